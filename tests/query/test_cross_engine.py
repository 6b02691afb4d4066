"""A join across PostgreSQL × MariaDB × SQLite through the hub equals plain DuckDB run on
copies exported with each engine's own driver (no hub code in the oracle)."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pyarrow as pa
import pymysql
import pytest

from zhongshu.config import load_city
from zhongshu.policy.identity import Caller
from zhongshu.query.service import QueryService

pytestmark = pytest.mark.server

QUERIES = [
    """SELECT s.street, g.garage_no, count(*) AS n, sum(w.fee_cents) AS fees
       FROM onstreet.spots s
       JOIN parking_westlake.garages g ON g.district = s.district
       JOIN parking_westlake.sessions w ON w.garage_no = g.garage_no
       JOIN traffic.segments t ON t.district = s.district AND t.lanes = 3
       WHERE s.occupied
       GROUP BY s.street, g.garage_no ORDER BY s.street, g.garage_no""",
    """SELECT c.district, count(DISTINCT p.passage_id) AS passages,
              count(DISTINCT g.garage_no) AS garages, count(DISTINCT s.spot_id) AS spots
       FROM traffic.passages p JOIN traffic.checkpoints c ON p.camera_id = c.camera_id
       JOIN parking_westlake.garages g ON g.district = c.district
       JOIN onstreet.spots s ON s.district = c.district
       GROUP BY c.district ORDER BY c.district""",
    """SELECT w.garage_no, w.session_id, w.entered, s.spot_id
       FROM parking_westlake.sessions w
       JOIN parking_westlake.garages g ON g.garage_no = w.garage_no
       JOIN onstreet.spots s ON s.district = g.district AND s.since < w.entered
       JOIN traffic.checkpoints c ON c.street = s.street AND c.direction = 'N'
       ORDER BY w.session_id, s.spot_id, c.camera_id LIMIT 200""",
]
TABLES = {  # dataset → (member source, table)
    "onstreet.spots": ("city-parking-db", "spots"),
    "parking_westlake.garages": ("parking-westlake-db", "garages"),
    "parking_westlake.sessions": ("parking-westlake-db", "sessions"),
    "traffic.segments": ("traffic-police-db", "segments"),
    "traffic.passages": ("traffic-police-db", "passages"),
    "traffic.checkpoints": ("traffic-police-db", "checkpoints"),
}


def _rows(src: Any, city_root: Path, table: str) -> tuple[list[str], list[Any]]:
    if src.kind == "postgres":
        with psycopg.connect(host=src.host, port=src.port, dbname=src.database,
                             user=src.user) as con:
            cur = con.execute(f'SELECT * FROM "{table}"')
            return [d.name for d in cur.description or ()], cur.fetchall()
    if src.kind == "mysql":
        con2 = pymysql.connect(host=src.host, port=src.port, user=src.user,
                               database=src.database)
        try:
            with con2.cursor() as c2:
                c2.execute(f"SELECT * FROM `{table}`")
                return [d[0] for d in c2.description], list(c2.fetchall())
        finally:
            con2.close()
    con3 = sqlite3.connect(city_root / str(src.path))
    try:
        cur3 = con3.execute(f'SELECT * FROM "{table}"')
        return [d[0] for d in cur3.description], cur3.fetchall()
    finally:
        con3.close()


def _oracle(city_dir: Path) -> duckdb.DuckDBPyConnection:
    """Copy each table with its engine's own driver into a plain in-memory DuckDB, typed as
    the dataset declares."""
    city = load_city(city_dir)
    sources, datasets = city.sources(), city.datasets()
    oracle = duckdb.connect()
    for dataset, (source, table) in TABLES.items():
        names, rows = _rows(sources[source][1], city.root, table)
        cols = list(zip(*rows, strict=True))
        arrow = pa.table({n: pa.array([str(v) if v is not None else None for v in c])
                          for n, c in zip(names, cols, strict=True)})
        declared = {c.name: c.type for c in datasets[dataset][1].columns}
        ns, name = dataset.split(".")
        oracle.register("incoming", arrow)
        oracle.execute(f"CREATE SCHEMA IF NOT EXISTS {ns}")
        sqlite = sources[source][1].kind == "sqlite"
        select = ", ".join(
            f'CAST("{n}" AS BIGINT) <> 0 AS "{n}"' if sqlite and declared[n] == "BOOLEAN"
            else f'CAST("{n}" AS {declared[n]}) AS "{n}"'  # SQLite keeps booleans as 0/1
            for n in names if n in declared)
        oracle.execute(f"CREATE TABLE {ns}.{name} AS SELECT {select} FROM incoming")
        oracle.unregister("incoming")
    return oracle


def _norm(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [tuple(float(v) if isinstance(v, Decimal) else v for v in r) for r in rows]


def test_postgres_mariadb_sqlite_join(real_service: QueryService, real_dir: Path) -> None:
    kinds = {real_service.catalog.datasets[d].source.kind for d in TABLES}
    assert kinds == {"postgres", "mysql", "sqlite"}
    oracle = _oracle(real_dir)
    caller = Caller(real_service.catalog.members["cockpit-city"])
    for sql in QUERIES:
        got = real_service.run(caller, sql, "city-operations")
        assert got.path == "duckdb"
        want = oracle.execute(sql).fetchall()
        assert len(want) > 0, sql
        assert _norm([tuple(r.values()) for r in got.table.to_pylist()]) == _norm(want), sql
