"""Write demo tables into the engines departments run: SQLite, PostgreSQL, MariaDB, Parquet, CSV.

These writers are the departments' side of the demo (their systems, filled by them); the hub
itself never writes to a source.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from zhongshu.demo.generate import Table

_SQL_TYPES = {
    "sqlite": {"int": "INTEGER", "str": "TEXT", "float": "DOUBLE", "ts": "TIMESTAMP",
               "bool": "BOOLEAN", "money": "DECIMAL(10,2)"},
    "postgres": {"int": "BIGINT", "str": "TEXT", "float": "DOUBLE PRECISION", "ts": "TIMESTAMP",
                 "bool": "BOOLEAN", "money": "NUMERIC(10,2)"},
    "mysql": {"int": "BIGINT", "str": "VARCHAR(191)", "float": "DOUBLE", "ts": "DATETIME",
              "bool": "BOOLEAN", "money": "DECIMAL(10,2)"},
}
_ARROW_TYPES = {"int": pa.int64(), "str": pa.string(), "float": pa.float64(),
                "ts": pa.timestamp("us"), "bool": pa.bool_(), "money": pa.decimal128(10, 2)}


def arrow_table(t: Table) -> pa.Table:
    """The table as Arrow, with the logical types mapped to Arrow types."""
    cols = list(zip(*t.rows, strict=True)) if t.rows else [() for _ in t.columns]
    return pa.table({name: pa.array(list(values), type=_ARROW_TYPES[kind])
                     for (name, kind), values in zip(t.columns, cols, strict=True)})


def _ddl(t: Table, engine: str, quote: str = '"') -> list[str]:
    cols = []
    for name, kind in t.columns:
        col = f"{quote}{name}{quote} {_SQL_TYPES[engine][kind]}"
        if name == t.primary_key:
            col += " PRIMARY KEY"
        cols.append(col)
    stmts = [f"CREATE TABLE {quote}{t.name}{quote} ({', '.join(cols)})"]
    for ix in t.indexes:
        stmts.append(f"CREATE INDEX {quote}ix_{t.name}_{ix}{quote} ON {quote}{t.name}{quote} "
                     f"({quote}{ix}{quote})")
    return stmts


def write_sqlite(path: Path, tables: Iterable[Table]) -> None:
    """Create a SQLite file holding ``tables`` (replacing any previous file)."""
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    try:
        for t in tables:
            for stmt in _ddl(t, "sqlite"):
                con.execute(stmt)
            marks = ", ".join("?" for _ in t.columns)
            con.executemany(f'INSERT INTO "{t.name}" VALUES ({marks})',
                            (tuple(_sqlite_value(v) for v in row) for row in t.rows))
        con.commit()
    finally:
        con.close()
    os.replace(tmp, path)


def _sqlite_value(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, Decimal):
        return float(v)
    return v


def write_parquet(folder: Path, tables: Iterable[Table]) -> None:
    """One ``TABLE.parquet`` file per table in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for t in tables:
        pq.write_table(arrow_table(t), folder / f"{t.name}.parquet")


def write_csv(folder: Path, tables: Iterable[Table]) -> None:
    """One ``TABLE.csv`` file (with a header row) per table in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for t in tables:
        pacsv.write_csv(arrow_table(t), folder / f"{t.name}.csv")


def write_postgres(conninfo: dict[str, Any], database: str, tables: Iterable[Table]) -> None:
    """(Re)create ``database`` on the server and load ``tables`` with COPY."""
    import psycopg

    with psycopg.connect(**conninfo, dbname="postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{database}"')
    with psycopg.connect(**conninfo, dbname=database) as con:
        for t in tables:
            for stmt in _ddl(t, "postgres"):
                con.execute(stmt)
            names = ", ".join(f'"{n}"' for n, _ in t.columns)
            with con.cursor().copy(f'COPY "{t.name}" ({names}) FROM STDIN') as copy:
                for row in t.rows:
                    copy.write_row(row)
        con.commit()


def drop_postgres(conninfo: dict[str, Any], database: str) -> None:
    """Drop a database created by :func:`write_postgres`."""
    import psycopg

    with psycopg.connect(**conninfo, dbname="postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def write_mysql(conninfo: dict[str, Any], database: str, tables: Iterable[Table]) -> None:
    """(Re)create ``database`` on the server and load ``tables`` in batches."""
    import pymysql

    con = pymysql.connect(**conninfo, charset="utf8mb4", autocommit=False)
    try:
        with con.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
            cur.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 "
                        "COLLATE utf8mb4_bin")
            cur.execute(f"USE `{database}`")
            for t in tables:
                for stmt in _ddl(t, "mysql", quote="`"):
                    cur.execute(stmt)
                marks = ", ".join("%s" for _ in t.columns)
                sql = f"INSERT INTO `{t.name}` VALUES ({marks})"
                for k in range(0, len(t.rows), 5000):
                    cur.executemany(sql, t.rows[k:k + 5000])
        con.commit()
    finally:
        con.close()


def drop_mysql(conninfo: dict[str, Any], database: str) -> None:
    """Drop a database created by :func:`write_mysql`."""
    import pymysql

    con = pymysql.connect(**conninfo)
    try:
        with con.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
    finally:
        con.close()
