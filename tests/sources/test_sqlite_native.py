"""The native SQLite path's own wall: the hub's read-only connection to a department's file
runs reads and nothing else, whatever SQL reaches it (the firewall bypassed)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.checksums import city_checksums
from zhongshu.config import load_city
from zhongshu.sources import open_source

REFUSED = [
    "ATTACH '{state}/hub.db' AS meta",
    "ATTACH ':memory:' AS scratch",
    "PRAGMA query_only = 0",
    "PRAGMA table_info(passages)",
    "SELECT * FROM pragma_table_info('passages')",
    "CREATE TEMP TABLE t AS SELECT 1",
    "CREATE TEMP VIEW v AS SELECT 1",
    "DELETE FROM passages",
    "INSERT INTO passages (passage_id) VALUES (-1)",
    "VACUUM INTO '{state}/copy.db'",
    "SELECT load_extension('/tmp/x.so')",
]


def test_the_native_connection_runs_only_reads(demo_dir: Path) -> None:
    city = load_city(demo_dir)
    owner, config = city.sources()["traffic-police-db"]
    src = open_source(config, city.root, owner)
    before = city_checksums(city)
    conn = src.connect_native()
    try:
        for stmt in REFUSED:
            with pytest.raises(sqlite3.DatabaseError):
                conn.execute(stmt.format(state=city.state_dir)).fetchall()
        # what the hub pushes down still runs: reads, functions, recursive CTEs
        n = conn.execute("WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r "
                         "WHERE i < 3) SELECT count(*), max(length(camera_id)) FROM r, "
                         "(SELECT camera_id FROM passages LIMIT 1)").fetchone()
        assert n[0] == 3 and n[1] > 0
    finally:
        conn.close()
    assert not (city.state_dir / "copy.db").exists()
    assert city_checksums(city) == before
