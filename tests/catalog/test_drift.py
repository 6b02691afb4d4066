"""Schema drift: a column gone or retyped marks the dataset unavailable, clearly; an owner's
declaration that never matched its source is the owner's mistake (``invalid``), named with its
file and line, never called drift."""

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
    """A copy of the demo city whose departments changed their tables under the hub (which
    had read them as declared first)."""
    root = city_tmp / "city"
    shutil.copytree(demo_dir, root, ignore=shutil.ignore_patterns("state", "ledger.pin"))
    with Node.open(root) as node:
        node.catalog.check()
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


def test_a_declaration_that_never_matched_is_the_owners_mistake(demo_dir: Path,
                                                                city_tmp: Path) -> None:
    root = city_tmp / "city"
    shutil.copytree(demo_dir, root, ignore=shutil.ignore_patterns("state", "ledger.pin"))
    path = root / "members" / "parking-westlake.toml"
    text = path.read_text(encoding="utf-8")
    assert text.count('name = "addr"') == 1
    path.write_text(text.replace('name = "addr"', 'name = "address"'), encoding="utf-8")
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1)
                if t == 'name = "address"')
    text = (root / "members" / "traffic-police.toml").read_text(encoding="utf-8")
    assert text.count('table = "checkpoints"') == 1
    (root / "members" / "traffic-police.toml").write_text(
        text.replace('table = "checkpoints"', 'table = "checkpoint"'), encoding="utf-8")
    node = Node.open(root)
    try:
        garages = node.query.catalog.datasets["parking_westlake.garages"]
        assert garages.status == "invalid"
        assert garages.reason.startswith(f"{path}:{line}: dataset `parking_westlake.garages`: "
                                         "column `address` cannot be read"), garages.reason
        cameras = node.query.catalog.datasets["traffic.checkpoints"]
        assert cameras.status == "invalid"
        assert cameras.reason.count("cannot read it") == 1, cameras.reason  # once, not per column
        assert "members/traffic-police.toml:" in cameras.reason
        caller = Caller(node.query.catalog.members["cockpit-city"])
        with pytest.raises(DatasetUnavailable) as refused:
            node.query.run(caller, "SELECT garage_no FROM parking_westlake.garages",
                           "city-operations")
        said = refused.value.message
        assert "drift" not in said and "schema changed" not in said and "told" not in said
        assert str(root) not in said  # the owner's file is not the consumer's business
    finally:
        node.close()


def test_a_row_scope_on_a_column_the_dataset_lacks_is_refused_by_catalog_check(
        demo_dir: Path, city_tmp: Path) -> None:
    root = city_tmp / "city"
    shutil.copytree(demo_dir, root, ignore=shutil.ignore_patterns("state", "ledger.pin"))
    path = root / "members" / "parks.toml"
    text = path.read_text(encoding="utf-8")
    assert text.count('row_scope = "district = \'xihu\'"') == 1
    path.write_text(text.replace('row_scope = "district = \'xihu\'"',
                                 'row_scope = "distrct = \'xihu\'"'), encoding="utf-8")
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "distrct" in t)
    res = subprocess.run([sys.executable, "-m", "zhongshu.cli", "catalog", "check", "--dir",
                          str(root)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    said = res.stdout + res.stderr
    assert f"parks.toml:{line}:" in said and "`distrct`" in said, said
    assert "Traceback" not in said


def test_a_reload_adopts_the_checks_of_unchanged_datasets_only(drifted: Path) -> None:
    from zhongshu.catalog.catalog import Catalog
    from zhongshu.config import load_city

    with Node.open(drifted) as node:
        old = node.catalog
        old.check()
        assert old.datasets["traffic.segments"].status == "drift"
        path = drifted / "members" / "parking-westlake.toml"
        path.write_text(path.read_text(encoding="utf-8").replace('name = "addr"',
                                                                 'name = "address"'))
        new = Catalog(load_city(drifted), node.stores.metadata)
        taken = new.adopt_checks(old)
        assert taken == len(new.datasets) - 1  # every dataset but the edited one
        new.datasets["traffic.segments"].status = "ok"  # were it checked again, drift again
        new.check()
        # adopted: not checked again (the drift it carried was the old catalog's finding)
        assert new.datasets["traffic.segments"].status == "ok"
        assert old.datasets["traffic.segments"].status == "drift"
        # the edited dataset was checked: its renamed column was never seen at the source
        assert new.datasets["parking_westlake.garages"].status == "invalid"
        new.check()  # the next full check checks everything again
        assert new.datasets["traffic.segments"].status == "drift"
