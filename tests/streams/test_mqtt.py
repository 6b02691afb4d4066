"""A department's MQTT stream → windowed aggregates queryable through the hub (real
Mosquitto on loopback)."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest

from tests.conftest import copy_demo_city, require_server
from zhongshu.config import load_city
from zhongshu.node import Node
from zhongshu.policy.identity import Caller
from zhongshu.query.service import QueryService
from zhongshu.streams.service import StreamService


def stream_block(kind: str, topic: str, extra: str = "") -> str:
    """The traffic police's live passages stream, as a member file declares it; ``extra``
    adds keys or sub-tables of the stream (a NATS durable, lookups)."""
    return f"""

[[streams]]
name = "passages-live"
kind = "{kind}"
topic = "{topic}"
time_column = "passed_at"
columns = [
  {{ name = "camera_id", type = "VARCHAR" }},
  {{ name = "vehicle_type", type = "VARCHAR" }},
  {{ name = "passed_at", type = "TIMESTAMP" }},
  {{ name = "speed_kmh", type = "DOUBLE" }},
]
{extra}"""


LIVE_FLOW = """
[[aggregates]]
dataset = "traffic.live_flow"
stream = "passages-live"
window_s = 60
lateness_s = 120
group_by = ["camera_id"]
measures = { vehicles = "count(*)", avg_speed = "avg(speed_kmh)", top_speed = "max(speed_kmh)" }
"""
T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def city(demo_dir: Path, city_tmp: Path) -> Iterator[tuple[Path, str]]:
    require_server("Mosquitto", 1883)
    topic = f"zhongshu-test/{uuid.uuid4().hex[:8]}/passages"
    root = copy_demo_city(demo_dir, city_tmp / "city",
                          {"traffic-police": stream_block("mqtt", topic) + LIVE_FLOW})
    yield root, topic


def _publisher() -> mqtt.Client:
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", 1883)
    pub.loop_start()
    return pub


def _send(pub: mqtt.Client, topic: str, payload: Any) -> None:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    pub.publish(topic, data, qos=1).wait_for_publish(5)


def _events(n: int, seed: int = 0) -> list[dict[str, Any]]:
    return [{"camera_id": f"cam-{(i * 7 + seed) % 5}", "vehicle_type": "car",
             "passed_at": datetime.fromtimestamp(T0 + (i * 13 + seed) % 170, UTC).isoformat(),
             "speed_kmh": 20 + (i * 31) % 50} for i in range(n)]


def _oracle(events: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[int, float, float]]:
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for e in events:
        t = datetime.fromisoformat(e["passed_at"]).timestamp()
        start = datetime.fromtimestamp(math.floor(t / 60) * 60, UTC).replace(tzinfo=None)
        groups[(start.isoformat(sep=" "), e["camera_id"])].append(e["speed_kmh"])
    return {k: (len(v), sum(v) / len(v), max(v)) for k, v in groups.items()}


def _rounded(d: dict[tuple[str, str], tuple[int, float, float]]
             ) -> dict[tuple[str, str], tuple[int, float, float]]:
    return {k: (n, round(avg, 9), round(top, 9)) for k, (n, avg, top) in d.items()}


def _rows(svc: QueryService) -> dict[tuple[str, str], tuple[int, float, float]]:
    who = Caller(svc.catalog.members["traffic-police"])
    t = svc.run(who, "SELECT window_start, camera_id, vehicles, avg_speed, top_speed "
                     "FROM traffic.live_flow", "traffic-management").table.to_pylist()
    return {(r["window_start"].isoformat(sep=" "), r["camera_id"]):
            (r["vehicles"], r["avg_speed"], r["top_speed"]) for r in t}


def _served(root: Path) -> dict[tuple[str, str], tuple[int, float, float]]:
    """The windows as a fresh hub on ``root`` serves them (rounded)."""
    svc = Node.open(root).query
    try:
        return _rounded(_rows(svc))
    finally:
        svc.close()


def _wait(streams: StreamService, messages: int) -> None:
    deadline = time.monotonic() + 20
    while sum(streams.counters.messages.values()) < messages:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {streams.counters.messages} messages arrived")
        time.sleep(0.05)
    streams.flush()


def test_events_become_queryable_windows(city: tuple[Path, str]) -> None:
    root, topic = city
    streams = StreamService(load_city(root))
    streams.start()
    pub = _publisher()
    try:
        deadline = time.monotonic() + 10
        while not streams.connected():
            assert time.monotonic() < deadline, "no MQTT connection"
            time.sleep(0.05)
        events = _events(500)
        for i in range(0, 500, 50):  # batched messages: arrays of 50 records
            _send(pub, topic, events[i:i + 50])
        _send(pub, topic, b"{not json")
        _send(pub, topic, [{"camera_id": "cam-1", "passed_at": "yesterday-ish"}])
        _wait(streams, 12)
        svc = Node.open(root).query
        try:
            assert _rounded(_rows(svc)) == _rounded(_oracle(events))
            # time moves on to 08:06:40; an event of 08:05 (its window closes at 08:08)
            # corrects its window; one of 08:00 (closed at 08:03) is dropped as too late
            def at(dt: float, cam: str = "cam-0") -> dict[str, Any]:
                return {"camera_id": cam, "vehicle_type": "bus", "speed_kmh": 99,
                        "passed_at": datetime.fromtimestamp(T0 + dt, UTC).isoformat()}
            _send(pub, topic, [at(400, "cam-9"), at(300), at(5)])
            _wait(streams, 13)
            assert _rounded(_rows(svc)) == _rounded(_oracle([*events, at(400, "cam-9"),
                                                              at(300)]))
            who = Caller(svc.catalog.members["traffic-police"])
            rej = svc.run(who, "SELECT reason, sample FROM "
                               "streams.traffic_police__passages_live__rejected",
                          "traffic-management").table.to_pylist()
            reasons = " | ".join(r["reason"] for r in rej)
            assert "not json" in reasons and "passed_at" in reasons
            assert any(r["sample"].startswith("{not json") for r in rej)
            assert streams.counters.rejected["passages-live"] == 2
        finally:
            svc.close()
    finally:
        pub.disconnect()
        pub.loop_stop()
        streams.stop()


def test_messages_sent_while_the_hub_is_down_are_not_lost(city: tuple[Path, str]) -> None:
    root, topic = city
    pub = _publisher()
    try:
        first = StreamService(load_city(root))
        first.start()
        deadline = time.monotonic() + 10
        while not first.connected():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        events = _events(300, seed=3)
        _send(pub, topic, events[:100])
        _wait(first, 1)
        first.stop()  # the hub goes down; the broker keeps its session
        _send(pub, topic, events[100:200])
        _send(pub, topic, events[200:])
        again = StreamService(load_city(root))
        again.start()
        try:
            _wait(again, 2)
        finally:
            again.stop()
        assert _served(root) == _rounded(_oracle(events))
    finally:
        pub.disconnect()
        pub.loop_stop()


def test_operators_see_each_streams_state_and_counts(city: tuple[Path, str]) -> None:
    """Health's detail for operators names each ingested stream with its state and counts
    (counted here against what the test published); other members see none of it."""
    from tests.conftest import RunningHub

    root, topic = city
    with Node.open(root, serve=True, monitor=False) as node:
        assert node.streams is not None
        node.streams.start()
        hub = RunningHub(node, root)
        pub = _publisher()
        try:
            def detail(member: str) -> dict[str, Any]:
                r = httpx.get(f"{hub.url}/v1/health",
                              headers={"Authorization": f"Bearer {hub.token(member)}"})
                assert r.status_code == 200, r.text
                return r.json()  # type: ignore[no-any-return]

            deadline = time.monotonic() + 10
            while not node.streams.connected():
                assert time.monotonic() < deadline, "no MQTT connection"
                time.sleep(0.05)
            before = detail("data-bureau")["streams"]["passages-live"]
            assert before["state"] == "connected" and before["last_message_age_s"] is None
            events = _events(120)
            for i in range(0, 120, 40):
                _send(pub, topic, events[i:i + 40])
            _send(pub, topic, b"{not json")
            _wait(node.streams, 4)
            got = detail("data-bureau")["streams"]["passages-live"]
            assert (got["messages"], got["records"], got["rejected"]) == (4, 120, 1)
            assert 0 <= got["last_message_age_s"] < 10
            assert "streams" not in detail("cockpit-city")
            assert topic not in json.dumps(detail("data-bureau"))  # no topic, no broker host
        finally:
            pub.disconnect()
            pub.loop_stop()
            hub.stop()
