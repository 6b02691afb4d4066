"""The same definition, batch and live: vehicles per segment, direction, vehicle type and
minute from the historical `traffic.passages` (SQL through the hub) equal those folded live
from the same passages published on MQTT (the stream enriched with each camera's segment and
direction from `traffic.checkpoints`)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import orjson

from tests.conftest import copy_demo_city, require_server
from tests.streams.test_mqtt import _publisher, _send, stream_block
from zhongshu.config import load_city
from zhongshu.policy.identity import Caller
from zhongshu.query.service import QueryService
from zhongshu.streams.service import StreamService

LOOKUP = """[[streams.lookups]]
dataset = "traffic.checkpoints"
key = "camera_id"
columns = [{ name = "segment_id", type = "VARCHAR" }, { name = "direction", type = "VARCHAR" }]
"""
SEGMENT_FLOW = """
[[aggregates]]
dataset = "traffic.segment_flow_live"
stream = "passages-live"
window_s = 60
lateness_s = 120
group_by = ["segment_id", "direction", "vehicle_type"]
measures = { vehicles = "count(*)" }
"""
P = "traffic-management"
BATCH = """
SELECT date_trunc('minute', p.passed_at) AS window_start, c.segment_id, c.direction,
       p.vehicle_type, count(*) AS vehicles
FROM traffic.passages p JOIN traffic.checkpoints c USING (camera_id)
WHERE p.passed_at >= TIMESTAMP '{lo}' AND p.passed_at < TIMESTAMP '{hi}'
GROUP BY ALL
"""


def test_segment_flow_batch_equals_live(demo_dir: Path, city_tmp: Path) -> None:
    require_server("Mosquitto", 1883)
    topic = f"zhongshu-test/{uuid.uuid4().hex[:8]}/passages"
    root = copy_demo_city(demo_dir, city_tmp / "city", {
        "traffic-police": stream_block("mqtt", topic, LOOKUP) + SEGMENT_FLOW})
    city = load_city(root)
    streams = StreamService(city)
    svc = QueryService(city, monitor=False)
    owner = Caller(svc.catalog.members["traffic-police"])

    def q(sql: str) -> list[dict[str, object]]:
        return svc.run(owner, sql, P).table.to_pylist()

    try:
        streams.load_lookups(lambda _owner, sql: q(sql))
        streams.start()
        deadline = time.monotonic() + 10
        while not streams.connected():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        day = q("SELECT min(passed_at) AS t FROM traffic.passages")[0]["t"]
        lo = day.replace(hour=7, minute=0, second=0, microsecond=0)
        hi = lo.replace(hour=9)
        passages = q(f"SELECT camera_id, vehicle_type, passed_at, speed_kmh FROM "
                     f"traffic.passages WHERE passed_at >= TIMESTAMP '{lo}' AND passed_at < "
                     f"TIMESTAMP '{hi}' ORDER BY passed_at, passage_id")
        assert len(passages) > 1000
        pub = _publisher()
        try:
            for i in range(0, len(passages), 500):
                chunk = [dict(r, passed_at=r["passed_at"].isoformat())
                         for r in passages[i:i + 500]]
                _send(pub, topic, orjson.dumps(chunk))
            deadline = time.monotonic() + 30
            while sum(streams.counters.records.values()) < len(passages):
                assert time.monotonic() < deadline, streams.counters
                time.sleep(0.05)
            streams.flush()
        finally:
            pub.disconnect()
            pub.loop_stop()
        svc.close()
        svc = QueryService(load_city(root), monitor=False)  # sees the live tables' rows
        owner = Caller(svc.catalog.members["traffic-police"])
        batch = {(r["window_start"], r["segment_id"], r["direction"], r["vehicle_type"]):
                 r["vehicles"] for r in q(BATCH.format(lo=lo, hi=hi))}
        live = {(r["window_start"], r["segment_id"], r["direction"], r["vehicle_type"]):
                r["vehicles"] for r in q("SELECT window_start, segment_id, direction, "
                                         "vehicle_type, vehicles FROM "
                                         "traffic.segment_flow_live")}
        assert sum(batch.values()) == len(passages)
        assert live == batch
    finally:
        streams.stop()
        svc.close()
