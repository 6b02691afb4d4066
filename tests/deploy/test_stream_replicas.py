"""Two replicas of one city on one PostgreSQL store share a stream — real ``zhongshu serve``
processes, a real broker (NATS JetStream, then Mosquitto): a day of the demo city's
passages is published in three parts; after the first the replica folding the stream is
SIGKILLed (and started again, as systemd would), after the second the other one. Every
window the replicas serve equals the batch definition over the same passages (DuckDB's
window functions over ``traffic.passages``, `zhongshu.traffic.counting`): nothing lost and
nothing counted twice across the two deaths — the pairs stage's waiting sightings too."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import paho.mqtt.client as mqtt
import psycopg
import pytest

from tests.conftest import HubProcess, copy_demo_city, free_port, readable_dir, require_server
from tests.deploy.store import set_up
from tests.stores.pg import fresh_database
from tests.streams.test_batch_live import MEASURES, _close, _keyed
from zhongshu.config import window_schema
from zhongshu.node import Node
from zhongshu.policy.identity import Caller
from zhongshu.traffic import counting

pytestmark = [pytest.mark.server, pytest.mark.slow]
P = "traffic-management"
STREAM = "passages-live"
PART = 100  # passages per message
PACE_S = 0.25  # between two messages: the deaths land while it flows



class Broker:
    """The department's side of one stream: its broker, its own publishing."""

    def __init__(self, kind: str, tag: str) -> None:
        self.kind = kind
        if kind == "mqtt":
            require_server("Mosquitto", 1883)
            self.topic = f"zhongshu-test/{tag}/passages"
            self.pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
            self.pub.connect("127.0.0.1", 1883)
            self.pub.loop_start()
        else:
            require_server("NATS", 4222)
            self.topic, self.name = f"zhongshu-test.{tag}.passages", f"ZSTEST_{tag}"
            asyncio.run(self._nats(lambda js: js.add_stream(name=self.name,
                                                            subjects=[self.topic])))

    async def _nats(self, step: Any) -> None:
        nc = await nats.connect("nats://127.0.0.1:4222")
        try:
            await step(nc.jetstream())
        finally:
            await nc.close()

    def publish(self, messages: list[bytes], sent: list[int]) -> None:
        """Publish ``messages`` a little apart, counting them in ``sent[0]``."""
        if self.kind == "mqtt":
            for m in messages:
                self.pub.publish(self.topic, m, qos=1).wait_for_publish(5)
                sent[0] += 1
                time.sleep(PACE_S)
            return

        async def send(js: Any) -> None:
            for m in messages:
                await js.publish(self.topic, m)
                sent[0] += 1
                await asyncio.sleep(PACE_S)

        asyncio.run(self._nats(send))

    def close(self) -> None:
        if self.kind == "mqtt":
            self.pub.disconnect()
            self.pub.loop_stop()
        else:
            asyncio.run(self._nats(lambda js: js.delete_stream(self.name)))


class Replica:
    def __init__(self, root: Path, env: dict[str, str], token: str) -> None:
        self.root, self.env, self.token = root, env, token
        self.port = free_port()
        self.hub: HubProcess | None = None
        self.start()

    def start(self) -> None:
        self.hub = HubProcess(self.root, self.port, "serve", "--no-watch", env=self.env)

    def state(self) -> str | None:
        """The stream's state on this replica: connected (folding), standby…; None: down."""
        assert self.hub is not None
        try:
            r = httpx.get(f"{self.hub.url}/v1/health", timeout=5,
                          headers={"Authorization": f"Bearer {self.token}"})
        except httpx.HTTPError:
            return None
        return r.json().get("streams", {}).get(STREAM, {}).get("state") \
            if r.status_code == 200 else None

    def kill(self) -> None:
        assert self.hub is not None
        self.hub.kill()

    def log(self) -> str:
        """The end of its log (all its runs), for a failure's message."""
        assert self.hub is not None
        return f"\n--- replica on port {self.port}:\n" + \
            self.hub.log_path.read_text(errors="replace")[-3000:]


def _folder(replicas: list[Replica], timeout_s: float = 15) -> tuple[Replica, float]:
    """The replica folding the stream (connected to its broker), and how long finding it
    took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        states = [r.state() for r in replicas]
        if states.count("connected") == 1 and states.count("standby") == len(replicas) - 1:
            return replicas[states.index("connected")], time.monotonic() - t0
        time.sleep(0.1)
    raise AssertionError(f"no single folder within {timeout_s} s: "
                         f"{[r.state() for r in replicas]}")


def _live(url: str, table: str) -> list[dict[str, Any]]:
    """A live table as folded, read from the store itself (not through a hub)."""
    with psycopg.connect(url) as con, con.cursor() as cur:
        cur.execute(f'SELECT * FROM "{window_schema("traffic-police")}"."{table}"')
        names = [d.name for d in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


@pytest.fixture(scope="module")
def batch(demo_dir: Path) -> Iterator[tuple[Any, list[dict[str, Any]], datetime, datetime]]:
    """The demo day's passages and the hub answering the batch definitions over them."""
    with pytest.MonkeyPatch.context() as mp, readable_dir("zs-stream-batch-") as tmp:
        mp.setenv("ZHONGSHU_ROW_CAP", "1000000")
        svc = Node.open(copy_demo_city(demo_dir, tmp / "city")).query
        try:
            who = Caller(svc.catalog.members["traffic-police"])
            passages = svc.run(who, "SELECT camera_id, plate, vehicle_type, passed_at, "
                                    "speed_kmh FROM traffic.passages ORDER BY passed_at, "
                                    "passage_id", P).table.to_pylist()
            lo = passages[0]["passed_at"].replace(hour=0, minute=0, second=0, microsecond=0)
            yield svc, passages, lo, lo + timedelta(days=1)
        finally:
            svc.close()


@pytest.mark.parametrize("kind", ["nats", "mqtt"])
def test_two_replicas_fold_each_message_once_across_two_deaths(
        demo_dir: Path, batch: Any, kind: str) -> None:
    svc, passages, lo, hi = batch
    tag = uuid.uuid4().hex[:8]
    broker = Broker(kind, tag)
    with readable_dir("zs-stream-replicas-") as tmp, fresh_database(migrate=False) as url:
        root = copy_demo_city(demo_dir, tmp / "city",
                              {"traffic-police": counting.live_block(kind, broker.topic)})
        env = {"ZHONGSHU_STORE_URL": url}
        tokens = set_up(root, env, ("data-bureau", "traffic-police"))
        token = tokens["data-bureau"]
        replicas = [Replica(root, env, token) for _ in range(2)]
        try:
            messages = [json.dumps([dict(r, passed_at=r["passed_at"].isoformat())
                                    for r in passages[i:i + PART]]).encode()
                        for i in range(0, len(passages), PART)]
            _folder(replicas)
            sent = [0]
            publishing = threading.Thread(target=broker.publish, args=(messages, sent))
            publishing.start()
            takeovers = []
            for k in (1, 2):  # the folder dies a third, then two thirds, of the way through
                while sent[0] < k * len(messages) // 3:
                    time.sleep(0.01)
                folder, _ = _folder(replicas)
                folder.kill()
                t0 = time.monotonic()
                _folder([r for r in replicas if r is not folder])
                takeovers.append(time.monotonic() - t0)
                folder.start()  # as systemd restarts it: it stands by
            publishing.join()
            print(f"\n{kind}: {len(passages)} passages in {len(messages)} messages; the "
                  f"stream's lease moved in {', '.join(f'{s:.2f}' for s in takeovers)} s")
            assert max(takeovers) < 5
            expect = _keyed(_q(svc, counting.flow_sql("city", lo, hi)), [], ["vehicles"])
            flow = counting.dataset("flow", "city").replace(".", "__")
            deadline = time.monotonic() + 90
            while (got := _keyed(_live(url, flow), [], ["vehicles"])) != expect:
                assert time.monotonic() < deadline, (
                    f"the live city flow never matched: {sum(v[0] for v in got.values())} "
                    f"vehicles live, {sum(v[0] for v in expect.values())} in the batch; "
                    + "".join(r.log() for r in replicas))
                time.sleep(0.5)
            time.sleep(12)  # past the broker's ack wait: anything delivered again is in now
            _compare(svc, url, lo, hi)
            for r in replicas:  # and both serve them, the one folding and the one standing by
                assert r.hub is not None
                served = httpx.post(f"{r.hub.url}/v1/query", timeout=30, json={
                    "sql": "SELECT CAST(sum(vehicles) AS BIGINT) AS n FROM "
                           f"{counting.dataset('flow', 'city')}",
                    "purpose": P}, headers={"Authorization": f"Bearer {tokens['traffic-police']}"})
                assert served.status_code == 200, served.text
                assert served.json()["rows"] == [[sum(v[0] for v in expect.values())]]
        finally:
            for r in replicas:
                if r.hub is not None and r.hub.proc.poll() is None:
                    r.hub.stop()
            broker.close()


def _q(svc: Any, sql: str) -> list[dict[str, Any]]:
    result = svc.run(Caller(svc.catalog.members["traffic-police"]), sql, P)
    assert not result.truncated
    return list(result.table.to_pylist())


def _compare(svc: Any, url: str, lo: datetime, hi: datetime) -> None:
    """Every live table equals its batch definition."""
    for area in counting.AREAS:
        groups = counting.AREAS[area] + (["vehicle_type"] if area == "segment" else [])
        values = MEASURES["flow"] + (["avg_speed_kmh"] if area == "segment" else [])
        batch = _keyed(_q(svc, counting.flow_sql(area, lo, hi)), groups, values)
        live = _keyed(_live(url, counting.dataset("flow", area).replace(".", "__")), groups,
                      values)
        assert _close(live, batch), f"flow per {area}"
    groups = counting.AREAS["segment"]
    values = MEASURES["travel_times"]
    batch = _keyed(_q(svc, counting.travel_times_sql(lo, hi)), groups, values)
    assert sum(v[0] for v in batch.values()) > 0
    assert _close(_keyed(_live(url, "traffic__travel_times"), groups, values), batch)
    for area in counting.AREAS:
        groups = counting.AREAS[area]
        values = MEASURES["congestion"][:3]
        batch = _keyed(_q(svc, counting.congestion_sql(area, lo, hi)), groups, values)
        live = _keyed(_live(url, counting.dataset("congestion", area).replace(".", "__")),
                      groups, values)
        assert _close(live, batch), f"congestion per {area}"
