"""The same definitions, batch and live, on the same day of demo events: flows, travel
times and congestion indices per segment, street, district and city from the historical
``traffic.passages`` (SQL through the hub, `zhongshu.traffic.counting`) equal those the
stream service folds from the same passages published on MQTT — a different path (Python
windows, a pairs stage keyed on the plate) checked against DuckDB's own window functions."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import copy_demo_city, readable_dir, require_server
from tests.streams.test_mqtt import _publisher, _send
from zhongshu.config import load_city
from zhongshu.node import Node
from zhongshu.policy.identity import Caller
from zhongshu.query.service import QueryService
from zhongshu.streams.service import StreamService
from zhongshu.traffic import counting

P = "traffic-management"
MEASURES = {"flow": ["vehicles"], "travel_times": ["trips", "avg_travel_s", "min_travel_s",
                                                   "max_travel_s", "free_flow_s"],
            "congestion": ["trips", "travel_s", "free_flow_s", "congestion_index", "level"]}


def _keyed(rows: list[dict[str, Any]], groups: list[str], values: list[str]
           ) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    return {(r["window_start"], *(r[g] for g in groups)): tuple(r[v] for v in values)
            for r in rows}


def _close(a: dict[tuple[Any, ...], tuple[Any, ...]],
           b: dict[tuple[Any, ...], tuple[Any, ...]]) -> bool:
    """Equal keys, equal values (floats to 1e-9 relative: sums in another order)."""
    if a.keys() != b.keys():
        return False
    return all(x == y or (isinstance(x, float) and math.isclose(x, y, rel_tol=1e-9))
               for k in a for x, y in zip(a[k], b[k], strict=True))


@pytest.fixture(scope="module")
def day(demo_dir: Path) -> Iterator[tuple[QueryService, datetime, datetime, int,
                                          StreamService]]:
    """The demo city with the live traffic block, after a whole day of its passages went
    through MQTT."""
    require_server("Mosquitto", 1883)
    with pytest.MonkeyPatch.context() as mp, readable_dir("zs-batch-live-") as base:
        mp.setenv("ZHONGSHU_ROW_CAP", "1000000")
        yield from _day(demo_dir, base)


def _day(demo_dir: Path, base: Path) -> Iterator[tuple[QueryService, datetime, datetime, int,
                                                       StreamService]]:
    topic = f"zhongshu-test/{uuid.uuid4().hex[:8]}/passages"
    root = copy_demo_city(demo_dir, base / "city",
                          {"traffic-police": counting.live_block("mqtt", topic)})
    streams = StreamService(load_city(root))
    svc = Node.open(root).query
    owner = Caller(svc.catalog.members["traffic-police"])
    try:
        streams.load_lookups(lambda _o, sql: svc.run(owner, sql, P).table.to_pylist())
        streams.start()
        deadline = time.monotonic() + 10
        while not streams.connected():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        passages = _q(svc, "SELECT camera_id, plate, vehicle_type, passed_at, speed_kmh "
                           "FROM traffic.passages ORDER BY passed_at, passage_id")
        lo = passages[0]["passed_at"].replace(hour=0, minute=0, second=0, microsecond=0)
        pub = _publisher()
        try:
            for i in range(0, len(passages), 1000):
                _send(pub, topic, orjson.dumps([dict(r, passed_at=r["passed_at"].isoformat())
                                                for r in passages[i:i + 1000]]))
            deadline = time.monotonic() + 60
            while sum(streams.counters.records.values()) < len(passages):
                assert time.monotonic() < deadline, streams.counters
                time.sleep(0.05)
            streams.flush()
        finally:
            pub.disconnect()
            pub.loop_stop()
    finally:
        svc.close()
    svc = Node.open(root).query  # sees the live tables' rows
    yield svc, lo, lo + timedelta(days=1), len(passages), streams
    streams.stop()
    svc.close()


def _q(svc: QueryService, sql: str) -> list[dict[str, Any]]:
    result = svc.run(Caller(svc.catalog.members["traffic-police"]), sql, P)
    assert not result.truncated
    return result.table.to_pylist()


@pytest.mark.parametrize("area", list(counting.AREAS))
def test_flow_batch_equals_live(day: Any, area: str) -> None:
    svc, lo, hi, n, _ = day
    groups = counting.AREAS[area] + (["vehicle_type"] if area == "segment" else [])
    values = MEASURES["flow"] + (["avg_speed_kmh"] if area == "segment" else [])
    batch = _keyed(_q(svc, counting.flow_sql(area, lo, hi)), groups, values)
    live = _keyed(_q(svc, f"SELECT * FROM {counting.dataset('flow', area)}"), groups, values)
    # a vehicle on a segment is seen by both its cameras (unless the day ended between
    # them) and counted once
    assert n / 2 <= sum(v[0] for v in batch.values()) < n / 2 + 100
    assert _close(live, batch)


def test_travel_times_batch_equals_live(day: Any) -> None:
    svc, lo, hi, _, streams = day
    groups = counting.AREAS["segment"]
    batch = _keyed(_q(svc, counting.travel_times_sql(lo, hi)), groups,
                   MEASURES["travel_times"])
    live = _keyed(_q(svc, "SELECT * FROM traffic.travel_times"), groups,
                  MEASURES["travel_times"])
    trips = sum(v[0] for v in batch.values())
    pairer = streams.pairers["passages-live"][0]
    assert trips == pairer.pairs > 0
    assert _close(live, batch)
    # the generator's cars do not exceed free flow by much, nor stop for 10× as long
    for _, _, lo_s, hi_s, free in batch.values():
        assert counting.MIN_RATIO * free <= lo_s <= hi_s <= counting.MAX_RATIO * free


@pytest.mark.parametrize("area", list(counting.AREAS))
def test_congestion_batch_equals_live(day: Any, area: str) -> None:
    svc, lo, hi, _, _ = day
    groups = counting.AREAS[area]
    batch = _keyed(_q(svc, counting.congestion_sql(area, lo, hi)), groups,
                   MEASURES["congestion"])
    live = _keyed(_q(svc, f"SELECT * FROM {counting.dataset('congestion', area)}"), groups,
                  MEASURES["congestion"])
    assert _close(live, batch)
    for _trips, travel, free, index, level in live.values():
        assert index == pytest.approx(travel / free)
        assert level == counting.level_of(index)
    if area == "city":  # rush hours make the demo city slower than free flow
        assert max(v[3] for v in live.values()) > 1.5
