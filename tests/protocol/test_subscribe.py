"""`GET /v1/subscribe`: new rows of a windowed dataset pushed as Server-Sent Events, under
the same grants as queries, on the ledger."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningHub, copy_demo_city, require_server
from tests.streams.test_mqtt import LIVE_FLOW, _events, _publisher, _send, stream_block
from zhongshu.node import Node

SQL = "SELECT window_start, camera_id, vehicles FROM traffic.live_flow"


@pytest.fixture
def live_hub(demo_dir: Path, city_tmp: Path) -> Iterator[tuple[RunningHub, str]]:
    require_server("Mosquitto", 1883)
    topic = f"zhongshu-test/{uuid.uuid4().hex[:8]}/passages"
    root = copy_demo_city(demo_dir, city_tmp / "city",
                          {"traffic-police": stream_block("mqtt", topic) + LIVE_FLOW})
    node = Node.open(root, serve=True, monitor=False)
    assert node.streams is not None
    node.streams.start()
    hub = RunningHub(node, root)
    try:
        yield hub, topic
    finally:
        hub.stop()
        node.close()


def _read_events(resp: httpx.Response, out: list[tuple[str, Any]], stop: threading.Event
                 ) -> None:
    kind = None
    try:
        for line in resp.iter_lines():
            if stop.is_set():
                return
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                out.append((kind or "message", json.loads(line[6:])))
    except httpx.HTTPError:
        return  # the test closed the stream


def test_new_window_rows_are_pushed(live_hub: tuple[RunningHub, str]) -> None:
    hub, topic = live_hub
    token = hub.token("traffic-police")
    pub = _publisher()
    events: list[tuple[str, Any]] = []
    stop = threading.Event()
    try:
        _send(pub, topic, _events(50))
        with httpx.Client(base_url=hub.url, timeout=30,
                          headers={"Authorization": f"Bearer {token}"}) as c, \
                c.stream("GET", "/v1/subscribe", params={
                    "sql": SQL, "purpose": "traffic-management", "interval_s": 0.5}) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            reader = threading.Thread(target=_read_events, args=(r, events, stop), daemon=True)
            reader.start()
            deadline = time.monotonic() + 15
            while sum(len(d["rows"]) for k, d in events if k == "rows") < 1:
                assert time.monotonic() < deadline, events
                time.sleep(0.1)
            first = sum(r_[2] for k, d in events if k == "rows" for r_ in d["rows"])
            # five more passages of one camera in a new minute: one new row, count 5
            later = [dict(e, camera_id="cam-new", passed_at="2026-11-25T09:30:10+00:00")
                     for e in _events(5)]
            _send(pub, topic, later)
            while not any(row[1] == "cam-new" and row[2] == 5
                          for k, d in events if k == "rows" for row in d["rows"]):
                assert time.monotonic() < deadline, events
                time.sleep(0.1)
            stop.set()
        assert events[0][0] == "open" and events[0][1]["receipt"]["index"] >= 0
        assert first == 50
        opened = events[0][1]["receipt"]["index"]
        with httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {token}"}) as c:
            entry = json.loads(c.get(f"/v1/ledger/entries/{opened}").text)
        assert entry["kind"] == "subscription" and entry["phase"] == "open"
        assert entry["datasets"] == ["traffic.live_flow"]
    finally:
        pub.disconnect()
        pub.loop_stop()


def test_subscriptions_are_governed(live_hub: tuple[RunningHub, str]) -> None:
    hub, _ = live_hub
    with httpx.Client(base_url=hub.url, timeout=30) as c:
        h = {"Authorization": f"Bearer {hub.token('cockpit-city')}"}
        r = c.get("/v1/subscribe", params={"sql": SQL, "purpose": "city-operations"},
                  headers=h)
        assert r.status_code in (403, 404) and r.json()["receipt"]["index"] >= 0
        r = c.get("/v1/subscribe", params={"sql": "SELECT count(*) FROM traffic.checkpoints",
                                           "purpose": "city-operations"}, headers=h)
        assert r.status_code == 400 and "windowed" in r.json()["error"]["message"]
        assert c.get("/v1/subscribe", params={"sql": SQL, "purpose": "x"}).status_code == 401


@pytest.mark.parametrize("sql", ["SELECT 1 AS one", "SELECT 1 + 2 AS three",
                                 "WITH x AS (SELECT 1 AS a) SELECT a FROM x"])
def test_a_subscription_over_no_dataset_is_refused(hub: RunningHub, sql: str) -> None:
    r = httpx.get(f"{hub.url}/v1/subscribe", params={"sql": sql, "purpose": "city-operations"},
                  headers={"Authorization": f"Bearer {hub.token('cockpit-city')}"}, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_request"
    assert "windowed" in r.json()["error"]["message"]


@pytest.fixture
def limited_hub(demo_dir: Path, city_tmp: Path, monkeypatch: pytest.MonkeyPatch
                ) -> Iterator[RunningHub]:
    require_server("Mosquitto", 1883)
    monkeypatch.setenv("ZHONGSHU_SUBSCRIBE_RATE_LIMIT", "2")
    topic = f"zhongshu-test/{uuid.uuid4().hex[:8]}/passages"
    root = copy_demo_city(demo_dir, city_tmp / "city",
                          {"traffic-police": stream_block("mqtt", topic) + LIVE_FLOW})
    node = Node.open(root, serve=True, monitor=False)
    hub = RunningHub(node, root)
    try:
        yield hub
    finally:
        hub.stop()
        node.close()


def test_every_subscription_is_rate_limited(limited_hub: RunningHub) -> None:
    hub = limited_hub
    h = {"Authorization": f"Bearer {hub.token('traffic-police')}"}  # the owner: no grant
    codes = []
    with httpx.Client(base_url=hub.url, timeout=30, headers=h) as c:
        for _ in range(3):
            with c.stream("GET", "/v1/subscribe", params={"sql": SQL, "purpose": "own"}) as r:
                codes.append(r.status_code)
                if r.status_code != 200:
                    r.read()
                    body = r.json()
        assert codes == [200, 200, 429], codes
        assert body["error"]["code"] == "rate_limited" and body["receipt"]["index"] >= 0
        other = {"Authorization": f"Bearer {hub.token('cockpit-city')}"}  # its own counter
        r = c.get("/v1/subscribe", params={"sql": "SELECT 1 AS one", "purpose": "x"},
                  headers=other)
        assert r.status_code == 400
