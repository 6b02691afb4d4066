"""Window folding on its own: `last(col)` keeps the value of the latest event by event
time, across batches arriving in any order; a message the windows cannot take is set aside
without stopping the stream (no broker needed: messages handed in)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import copy_demo_city
from zhongshu.config import load_city
from zhongshu.node import Node
from zhongshu.policy.identity import Caller
from zhongshu.streams.service import StreamService
from zhongshu.streams.windows import Aggregate

GATES = """

[[streams]]
name = "gates"
kind = "mqtt"
topic = "unused/in/this/test"
time_column = "at"
columns = [
  { name = "garage_no", type = "VARCHAR" },
  { name = "gate", type = "VARCHAR" },
  { name = "at", type = "TIMESTAMP" },
  { name = "free", type = "INTEGER" },
]

[[aggregates]]
dataset = "parking_westlake.gate_windows"
stream = "gates"
window_s = 60
lateness_s = 600
group_by = ["garage_no"]
measures = { events = "count(*)", free = "last(free)", least_free = "min(free)" }
"""


def test_last_is_the_latest_event_whatever_the_arrival_order(demo_dir: Path,
                                                             city_tmp: Path) -> None:
    root = copy_demo_city(demo_dir, city_tmp / "city", {"parking-westlake": GATES})
    streams = StreamService(load_city(root))
    streams.start(subscribe=False)

    def gate(sec: int, free: int, garage: str = "WL01") -> dict[str, object]:
        return {"garage_no": garage, "gate": "in", "at": f"2026-11-25T08:00:{sec:02d}",
                "free": free}

    try:
        streams.deliver("gates", json.dumps([gate(30, 7), gate(10, 9), gate(50, 5)]).encode())
        streams.flush()
        # a batch arriving later with an earlier event: counted, but not the latest value
        streams.deliver("gates", json.dumps([gate(20, 8), gate(5, 1, "WL02")]).encode())
        streams.flush()
    finally:
        streams.stop()
    svc = Node.open(root).query
    try:
        who = Caller(svc.catalog.members["parking-westlake"])
        rows = svc.run(who, "SELECT garage_no, events, free, least_free FROM "
                            "parking_westlake.gate_windows ORDER BY 1",
                       "convenient-parking").table.to_pylist()
    finally:
        svc.close()
    assert rows == [{"garage_no": "WL01", "events": 4, "free": 5, "least_free": 5.0},
                    {"garage_no": "WL02", "events": 1, "free": 1, "least_free": 1.0}]


def test_a_message_that_cannot_be_folded_is_rejected_and_the_stream_goes_on(
        demo_dir: Path, city_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = copy_demo_city(demo_dir, city_tmp / "city", {"parking-westlake": GATES})
    streams = StreamService(load_city(root))
    fold = Aggregate.fold

    def fragile(self: Aggregate, records: list[tuple[float, dict[str, object]]]) -> object:
        if any(r["garage_no"] == "BAD" for _, r in records):
            raise ArithmeticError("a fault in folding")
        return fold(self, records)

    monkeypatch.setattr(Aggregate, "fold", fragile)
    acked: list[int] = []
    streams.start(subscribe=False)
    try:
        for n, garage in enumerate(["WL01", "BAD", "WL02"]):
            streams.deliver("gates", json.dumps([{"garage_no": garage, "gate": "in", "free": n,
                                                  "at": "2026-11-25T08:00:00"}]).encode(),
                            ack=lambda n=n: acked.append(n))
        streams.flush()
    finally:
        streams.stop()
    assert sorted(acked) == [0, 1, 2]  # the bad one is kept as rejected, not redelivered
    svc = Node.open(root).query
    try:
        who = Caller(svc.catalog.members["parking-westlake"])
        rows = svc.run(who, "SELECT garage_no FROM parking_westlake.gate_windows ORDER BY 1",
                       "convenient-parking").table.to_pylist()
        rejected = svc.run(who, "SELECT reason, sample FROM "
                                "streams.parking_westlake__gates__rejected",
                           "convenient-parking").table.to_pylist()
    finally:
        svc.close()
    assert rows == [{"garage_no": "WL01"}, {"garage_no": "WL02"}]
    assert len(rejected) == 1 and "a fault in folding" in rejected[0]["reason"]
    assert '"BAD"' in rejected[0]["sample"]
