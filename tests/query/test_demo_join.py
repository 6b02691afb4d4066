"""The demo's headline query: three datasets of two members, through `zhongshu query`,
equals the same query run directly on the underlying files by SQLite itself."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from tests.conftest import RunningHub

HUB_SQL = """
SELECT c.district, g.garage_no, g.name, count(*) AS buses, round(avg(p.speed_kmh), 3) AS speed
FROM traffic.passages p
JOIN traffic.checkpoints c ON p.camera_id = c.camera_id
JOIN parking_westlake.garages g ON g.district = c.district
WHERE p.vehicle_type = 'bus' AND p.passed_at >= '2026-11-24 07:00:00'
GROUP BY c.district, g.garage_no, g.name
ORDER BY c.district, g.garage_no
"""

DIRECT_SQL = """
SELECT c.district, g.garage_no, g.name, count(*) AS buses, round(avg(p.speed_kmh), 3) AS speed
FROM t.passages p
JOIN t.checkpoints c ON p.camera_id = c.camera_id
JOIN w.garages g ON g.district = c.district
WHERE p.vehicle_type = 'bus' AND p.passed_at >= '2026-11-24 07:00:00'
GROUP BY c.district, g.garage_no, g.name
ORDER BY c.district, g.garage_no
"""

ROWS_HUB = """
SELECT p.passage_id, p.passed_at, c.street, g.total_spaces
FROM traffic.passages p JOIN traffic.checkpoints c ON p.camera_id = c.camera_id
JOIN parking_westlake.garages g ON g.district = c.district
WHERE g.garage_no = 'WL003' ORDER BY p.passage_id LIMIT 50
"""
ROWS_DIRECT = """
SELECT p.passage_id, p.passed_at, c.street, g.total_spaces
FROM t.passages p JOIN t.checkpoints c ON p.camera_id = c.camera_id
JOIN w.garages g ON g.district = c.district
WHERE g.garage_no = 'WL003' ORDER BY p.passage_id LIMIT 50
"""


def _direct(demo_dir: Path, sql: str) -> list[list[object]]:
    con = sqlite3.connect(f"file:{demo_dir / 'data' / 'traffic-police.sqlite'}?mode=ro", uri=True)
    con.execute(f"ATTACH 'file:{demo_dir / 'data' / 'parking-westlake.sqlite'}?mode=ro' AS w")
    con.execute(f"ATTACH 'file:{demo_dir / 'data' / 'traffic-police.sqlite'}?mode=ro' AS t")
    try:
        return [list(r) for r in con.execute(sql).fetchall()]
    finally:
        con.close()


def _cli(hub: RunningHub, sql: str) -> list[dict[str, object]]:
    env = {**os.environ, "ZHONGSHU_TOKEN": hub.token("cockpit-city")}
    res = subprocess.run([sys.executable, "-m", "zhongshu.cli", "query", "--url", hub.url,
                          "--purpose", "city-operations", "--format", "json", sql],
                         capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_three_dataset_join_equals_direct_sqlite(hub: RunningHub, demo_dir: Path) -> None:
    got = _cli(hub, HUB_SQL)
    want = _direct(demo_dir, DIRECT_SQL)
    assert len(want) > 10, "the fixture city should have buses near garages"
    assert [[r["district"], r["garage_no"], r["name"], r["buses"]] for r in got] == \
        [w[:4] for w in want]
    for r, w in zip(got, want, strict=True):
        assert abs(float(r["speed"]) - float(w[4])) < 1e-6


def test_row_level_join_equals_direct_sqlite(hub: RunningHub, demo_dir: Path) -> None:
    got = _cli(hub, ROWS_HUB)
    want = _direct(demo_dir, ROWS_DIRECT)
    assert len(got) == len(want) == 50
    for r, w in zip(got, want, strict=True):
        assert r["passage_id"] == w[0]
        assert datetime.fromisoformat(str(r["passed_at"])) == datetime.fromisoformat(str(w[1]))
        assert (r["street"], r["total_spaces"]) == (w[2], w[3])
