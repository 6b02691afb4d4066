"""The trees scenario's cockpit panel (the ``zhongshu.cockpit_panels`` entry point): its own
derived dataset, as the viewer reads it."""

from __future__ import annotations

from typing import Any


def panels() -> list[dict[str, Any]]:
    """Trees per 1,000 residents by district, from the latest published survey."""
    return [{
        "id": "trees-per-resident",
        "group": "trees",
        "title": "Trees per 1,000 residents (latest published survey)",
        "title_zh": "每千人树木数（最新普查）",
        "kind": "bar",
        "levels": ["city"],
        "datasets": ["trees.density"],
        "sql": "SELECT district, trees_per_1000_residents FROM trees.density WHERE survey = "
               "(SELECT max(survey) FROM trees.density) ORDER BY 1",
    }]
