"""The pay-once scenario's cockpit panel (the ``zhongshu.cockpit_panels`` entry point)."""

from __future__ import annotations

from typing import Any


def panels() -> list[dict[str, Any]]:
    """Share of visits paid once, per hospital (the city and district pages)."""
    return [{
        "id": "pay-once-share",
        "group": "health",
        "title": "Visits paid once, per hospital (%)",
        "title_zh": "最多付一次占比（按医院）",
        "kind": "bar",
        "levels": ["city", "district"],
        "datasets": ["health.visits", "health.hospitals"],
        "area": {"district": "h.district"},
        "sql": "SELECT h.name AS hospital, round(100.0 * avg(CASE WHEN v.paid_once THEN 1 "
               "ELSE 0 END), 1) AS paid_once_pct FROM health.visits v JOIN health.hospitals h "
               "ON v.hospital_id = h.hospital_id WHERE {where} GROUP BY 1 ORDER BY 1",
    }]
