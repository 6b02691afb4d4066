"""Traffic signals (信号配时): recommends each intersection's cycle and green split from the
live segment counts, read through the hub as ``app-traffic`` — Webster's method, the same
as the ``webster`` controller evaluated in SUMO (:mod:`zhongshu.traffic.signals`) — and
publishes them as ``traffic_signals.recommendations``, a dataset of its own member kept in
its own store. With the live demo feed on, the recommendations follow the rush hour.

Flows: the vehicles counted on each segment arriving at the intersection over the last
``WINDOW_MIN`` closed minutes of the live ``traffic.segment_flow`` (ending ``SETTLED_MIN``
minutes before the newest, so late events have been folded; per hour and lane); a phase's
critical flow is its busiest approach (north–south: segments heading N or S; east–west: E
or W)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter
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


def recommend(hub: Hub, purpose: str) -> list[dict[str, Any]]:
    """A plan per intersection from the last ``WINDOW_MIN`` minutes of live counts."""
    sql = f"""
WITH latest AS (SELECT max(window_end) - INTERVAL {SETTLED_MIN} MINUTE AS t
                FROM traffic.segment_flow),
recent AS (
  SELECT f.segment_id, any_value(f.direction) AS direction, sum(f.vehicles) AS vehicles
  FROM traffic.segment_flow f, latest
  WHERE f.window_end > latest.t - INTERVAL {WINDOW_MIN} MINUTE AND f.window_end <= latest.t
  GROUP BY 1)
SELECT s.to_node AS intersection_id, g.district, g.cycle_s AS current_cycle_s,
  (SELECT t FROM latest) AS window_end,
  max(CASE WHEN r.direction IN ('N', 'S') THEN 60.0 * r.vehicles / {WINDOW_MIN} / s.lanes END)
    AS flow_ns_vph,
  max(CASE WHEN r.direction IN ('E', 'W') THEN 60.0 * r.vehicles / {WINDOW_MIN} / s.lanes END)
    AS flow_ew_vph
FROM traffic.segments s JOIN traffic.signals g ON g.intersection_id = s.to_node
LEFT JOIN recent r ON r.segment_id = s.segment_id
GROUP BY 1, 2, 3 ORDER BY 1"""
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
    def recommend_now() -> Any:
        """Recompute every intersection's plan from the live counts and publish them as
        ``traffic_signals.recommendations``."""
        try:
            rows = recommend(hub, purpose)
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
