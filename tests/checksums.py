"""Checksums of every table of every source, computed with each engine's own tools.

Independent of the hub's code: SQLite files are read with sqlite3, Parquet/CSV files hashed as
bytes, PostgreSQL and MariaDB tables checksummed by the servers themselves.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

from zhongshu.config import City


def _sqlite(path: Path) -> dict[str, str]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        out = {}
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                           "ORDER BY name")]
        for name in names:
            h = hashlib.sha256()
            for row in con.execute(f'SELECT * FROM "{name}" ORDER BY rowid'):
                h.update(repr(row).encode())
            out[name] = h.hexdigest()
        schema = con.execute("SELECT group_concat(sql, ';') FROM sqlite_master").fetchone()[0]
        out["__schema__"] = hashlib.sha256(str(schema).encode()).hexdigest()
        return out
    finally:
        con.close()


def _folder(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def _postgres(src: Any) -> dict[str, str]:
    import psycopg

    with psycopg.connect(host=src.host, port=src.port or 5432, dbname=src.database,
                         user=src.user or "postgres", autocommit=True) as con:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "ORDER BY 1")]
        out = {}
        for t in tables:
            out[t] = con.execute(f'SELECT md5(coalesce(string_agg(x::text, \'|\' ORDER BY '
                                 f'x::text), \'\')) FROM "{t}" AS x').fetchone()[0]
        out["__tables__"] = ",".join(tables)
        return out


def _mysql(src: Any) -> dict[str, str]:
    import pymysql

    con = pymysql.connect(host=src.host, port=src.port or 3306, user=src.user or "root",
                          database=src.database)
    try:
        with con.cursor() as cur:
            cur.execute("SHOW TABLES")
            tables = sorted(r[0] for r in cur.fetchall())
            out = {}
            for t in tables:
                cur.execute(f"CHECKSUM TABLE `{t}` EXTENDED")
                out[t] = str(cur.fetchone()[1])
            out["__tables__"] = ",".join(tables)
            return out
    finally:
        con.close()


def city_checksums(city: City) -> dict[str, dict[str, str]]:
    """Source name → table → checksum, for every source of the city."""
    result: dict[str, dict[str, str]] = {}
    for name, (_owner, src) in city.sources().items():
        if src.kind == "sqlite":
            result[name] = _sqlite(city.root / str(src.path))
        elif src.kind in ("parquet", "csv"):
            result[name] = _folder(city.root / str(src.path))
        elif src.kind == "postgres":
            result[name] = _postgres(src)
        else:
            result[name] = _mysql(src)
    return result
