"""Schema drift: a column gone or retyped marks the dataset unavailable, clearly."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from zhongshu.errors import DatasetUnavailable
from zhongshu.node import Node
from zhongshu.policy.identity import Caller


@pytest.fixture
def drifted(demo_dir: Path, city_tmp: Path) -> Path:
    """A copy of the demo city whose departments changed their tables under the hub."""
    root = city_tmp / "city"
    shutil.copytree(demo_dir, root, ignore=shutil.ignore_patterns("state", "ledger.pin"))
    con = sqlite3.connect(root / "data" / "parking-westlake.sqlite")
    con.execute("ALTER TABLE garages DROP COLUMN addr")
    con.commit()
    con.close()
    con = sqlite3.connect(root / "data" / "traffic-police.sqlite")
    con.executescript("""
        CREATE TABLE segments2 (segment_id TEXT, district TEXT, from_node TEXT, to_node TEXT,
                                length_m TEXT, free_flow_kmh DOUBLE, lanes INTEGER);
        INSERT INTO segments2 SELECT segment_id, district, from_node, to_node,
            CAST(length_m AS TEXT) || ' m', free_flow_kmh, lanes FROM segments;
        DROP TABLE segments;
        ALTER TABLE segments2 RENAME TO segments;
    """)
    con.commit()
    con.close()
    return root


def test_drift_detected_at_start(drifted: Path) -> None:
    node = Node.open(drifted)
    service = node.query
    try:
        garages = service.catalog.datasets["parking_westlake.garages"]
        assert garages.status == "drift" and "`addr`" in garages.reason
        segments = service.catalog.datasets["traffic.segments"]
        assert segments.status == "drift"
        assert "`length_m` is declared DOUBLE but the source now holds VARCHAR" in segments.reason
        caller = Caller(service.catalog.members["cockpit-city"])
        with pytest.raises(DatasetUnavailable):
            service.run(caller, "SELECT garage_no FROM parking_westlake.garages", "city-operations")
        with pytest.raises(DatasetUnavailable):
            service.run(caller, "SELECT segment_id FROM traffic.segments", "city-operations")
        # the rest of the same sources keeps working
        assert service.run(caller, "SELECT count(*) FROM parking_westlake.occupancy",
                           "city-operations").table.num_rows == 1
        assert service.run(caller, "SELECT count(*) FROM traffic.passages",
                           "city-operations").table.num_rows
        assert service.store.dataset_status("traffic.segments")[0] == "drift"
    finally:
        node.close()


def test_catalog_check_command(drifted: Path, demo_dir: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "zhongshu.cli", "catalog", "check", "--dir",
                          str(drifted)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert "parking_westlake.garages" in res.stdout and "addr" in res.stdout
    assert "Traceback" not in res.stdout + res.stderr
    ok = subprocess.run([sys.executable, "-m", "zhongshu.cli", "catalog", "check", "--dir",
                         str(demo_dir)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout
