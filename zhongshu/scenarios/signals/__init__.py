"""Traffic signals (信号配时): recommends each intersection's cycle and green split from the
live segment counts, read through the hub as ``app-traffic`` — Webster's method, the same
as the ``webster`` controller evaluated in SUMO (:mod:`zhongshu.traffic.signals`) — and
publishes them as ``traffic_signals.recommendations``, a dataset of its own member kept in
its own store. With the live demo feed on, the recommendations follow the rush hour.

Flows: the vehicles counted on each segment arriving at the intersection over the last
``WINDOW_MIN`` closed minutes of the live ``traffic.segment_flow`` (ending ``SETTLED_MIN``
minutes before the newest, so late events have been folded; per hour and lane); a phase's
critical flow is its busiest approach (north–south: segments heading N or S; east–west: E
or W). A city without a live feed yet asks for ``from=recorded``: the busiest hour of the
recorded ``traffic.passages`` (each segment counted by its busiest camera)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from zhongshu.client import Hub
from zhongshu.errors import ZhongshuError
from zhongshu.scenarios import Scenario, own_store
from zhongshu.traffic.signals.controllers import LOST_PER_PHASE_S, webster_plan

WINDOW_MIN = 15
SETTLED_MIN = 3  # windows this much older than the newest are closed (lateness 2 min)
FILE = "derived.sqlite"
COLUMNS = ("intersection_id", "district", "window_end", "flow_ns_vph", "flow_ew_vph",
           "cycle_s", "green_ns_s", "green_ew_s", "current_cycle_s", "computed_at")
DDL = ("CREATE TABLE IF NOT EXISTS recommendations (intersection_id TEXT PRIMARY KEY, "
       "district TEXT, window_end TEXT, flow_ns_vph REAL, flow_ew_vph REAL, cycle_s REAL, "
       "green_ns_s REAL, green_ew_s REAL, current_cycle_s REAL, computed_at TEXT)")


def create(home: Path) -> Path:
    """The scenario's store, created empty if missing."""
    return own_store(home, FILE, DDL)


_LIVE = f"""
WITH latest AS (SELECT max(window_end) - INTERVAL {SETTLED_MIN} MINUTE AS t
                FROM traffic.segment_flow),
recent AS (
  SELECT f.segment_id, any_value(f.direction) AS direction,
         60.0 * sum(f.vehicles) / {WINDOW_MIN} AS per_hour
  FROM traffic.segment_flow f, latest
  WHERE f.window_end > latest.t - INTERVAL {WINDOW_MIN} MINUTE AND f.window_end <= latest.t
  GROUP BY 1),
ending AS (SELECT t FROM latest)"""

# the recorded day's busiest hour; a segment's count is its busiest camera's (two cameras on
# one segment see the same vehicles)
_RECORDED = """
WITH hourly AS (
  SELECT c.segment_id, c.direction, date_trunc('hour', p.passed_at) AS hour, count(*) AS n
  FROM traffic.passages p JOIN traffic.checkpoints c ON c.camera_id = p.camera_id
  GROUP BY c.camera_id, 1, 2, 3),
peak AS (SELECT hour FROM hourly GROUP BY 1 ORDER BY sum(n) DESC, 1 LIMIT 1),
recent AS (
  SELECT h.segment_id, any_value(h.direction) AS direction, max(h.n) AS per_hour
  FROM hourly h, peak WHERE h.hour = peak.hour GROUP BY 1),
ending AS (SELECT hour + INTERVAL 1 HOUR AS t FROM peak)"""

_PLAN = """
SELECT s.to_node AS intersection_id, g.district, g.cycle_s AS current_cycle_s,
  (SELECT t FROM ending) AS window_end,
  max(CASE WHEN r.direction IN ('N', 'S') THEN r.per_hour / s.lanes END) AS flow_ns_vph,
  max(CASE WHEN r.direction IN ('E', 'W') THEN r.per_hour / s.lanes END) AS flow_ew_vph
FROM traffic.segments s JOIN traffic.signals g ON g.intersection_id = s.to_node
LEFT JOIN recent r ON r.segment_id = s.segment_id
GROUP BY 1, 2, 3 ORDER BY 1"""

FROM = ("live", "recorded")


def recommend(hub: Hub, purpose: str, counts: str = "live") -> list[dict[str, Any]]:
    """A plan per intersection from the last ``WINDOW_MIN`` minutes of live counts, or
    (``counts="recorded"``) from the busiest hour of the recorded passages — for a city
    without a live feed yet."""
    if counts not in FROM:
        raise ValueError(f"counts must be one of {', '.join(FROM)}")
    sql = (_LIVE if counts == "live" else _RECORDED) + _PLAN
    out = []
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for r in hub.query(sql, purpose).to_pylist():
        ns, ew = float(r["flow_ns_vph"] or 0), float(r["flow_ew_vph"] or 0)
        cycle, (g_ns, g_ew) = webster_plan([ns, ew], 2 * LOST_PER_PHASE_S)
        out.append({"intersection_id": r["intersection_id"], "district": r["district"],
                    "window_end": r["window_end"].isoformat() if r["window_end"] else None,
                    "flow_ns_vph": round(ns, 1), "flow_ew_vph": round(ew, 1),
                    "cycle_s": round(cycle, 1), "green_ns_s": round(g_ns, 1),
                    "green_ew_s": round(g_ew, 1), "current_cycle_s": r["current_cycle_s"],
                    "computed_at": stamp})
    return out


def publish(home: Path, rows: list[dict[str, Any]]) -> None:
    """Replace the published recommendations (one transaction)."""
    with sqlite3.connect(create(home)) as c:
        c.execute("DELETE FROM recommendations")
        c.executemany(f"INSERT INTO recommendations VALUES ({', '.join('?' * len(COLUMNS))})",
                      [tuple(r[k] for k in COLUMNS) for r in rows])


def router(hub: Hub, purpose: str, home: Path) -> APIRouter:
    """The scenario's API (mounted at /scenarios/traffic-signals)."""
    api = APIRouter()

    @api.post("/recommend")
    def recommend_now(counts: Annotated[Literal["live", "recorded"], Query(
            alias="from", description="the live feed's last minutes, or the recorded "
                                      "day's busiest hour")] = "live") -> Any:
        """Recompute every intersection's plan from the counts and publish them as
        ``traffic_signals.recommendations``."""
        try:
            rows = recommend(hub, purpose, counts)
        except ZhongshuError as e:  # e.g. no live feed: the hub's own answer
            return JSONResponse({"error": e.to_dict()}, status_code=e.status)
        publish(home, rows)
        return {"dataset": "traffic_signals.recommendations", "intersections": len(rows),
                "window_end": rows[0]["window_end"] if rows else None, "plans": rows}

    return api


scenario = Scenario(name="traffic-signals", member="app-traffic",
                    purpose="traffic-management", router=router, store=create)


def panels() -> list[dict[str, Any]]:
    """The scenario's cockpit panel: the intersections it would retime most."""
    return [{
        "id": "signal-plans",
        "group": "traffic",
        "title": "Recommended signal cycles (longest first)",
        "title_zh": "信号配时建议",
        "kind": "table",
        "levels": ["city", "district"],
        "datasets": ["traffic_signals.recommendations"],
        "area": {"district": "district"},
        "sql": "SELECT intersection_id, cycle_s, green_ns_s, green_ew_s, current_cycle_s "
               "FROM traffic_signals.recommendations WHERE {where} "
               "ORDER BY cycle_s DESC, intersection_id LIMIT 6",
    }]
