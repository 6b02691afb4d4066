"""The parking scenario's cockpit panels (the ``zhongshu.cockpit_panels`` entry point): run by
the cockpit as its viewer, like every panel."""

from __future__ import annotations

from typing import Any


def panels() -> list[dict[str, Any]]:
    """Garage capacity of both operators, side by side (the city page)."""
    return [{
        "id": "parking-operators",
        "group": "parking",
        "title": "Garage spaces by operator",
        "title_zh": "各停车公司车位",
        "kind": "bar",
        "levels": ["city"],
        "datasets": ["parking_westlake.garages", "parking_qiantang.lots"],
        "sql": "SELECT 'Westlake 西湖停车' AS operator, count(*) AS garages, "
               "sum(total_spaces) AS spaces FROM parking_westlake.garages UNION ALL "
               "SELECT 'Qiantang 钱塘停车', count(*), sum(capacity) FROM parking_qiantang.lots",
    }]
