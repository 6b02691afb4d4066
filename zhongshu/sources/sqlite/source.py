"""SQLite source: DuckDB's sqlite scanner for joins, Python's sqlite3 (``mode=ro``) for pushdown."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import duckdb
from sqlglot import exp

from zhongshu.sources import _extensions
from zhongshu.sources.base import Files, NativeSQL, Reach, Rows, sql_literal, sqlite_files
from zhongshu.sources.errors import Failure
from zhongshu.sources.sqlite import errors

_READS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                    sqlite3.SQLITE_RECURSIVE})


def _reads_only(action: int, *_: object) -> int:
    """SQLite's authorizer: reading tables and calling functions, nothing else (no ATTACH,
    PRAGMA, writes or schema changes)."""
    return sqlite3.SQLITE_OK if action in _READS else sqlite3.SQLITE_DENY


class Source(Files, NativeSQL):
    kind = "sqlite"
    dialect = "sqlite"

    def attach(self, con: duckdb.DuckDBPyConnection) -> None:
        """Attach the file read-only; a missing file is an error, never a new empty database."""
        self.probe()
        _extensions.load(con, "sqlite_scanner")
        con.execute(f"ATTACH {sql_literal(str(self.path()))} AS {self.alias} "
                    "(TYPE sqlite, READ_ONLY)")

    def reach(self) -> Reach:
        """The file, its journals, and the sqlite scanner."""
        return Reach(read=(*sqlite_files(self.path()),
                           _extensions.extension_path("sqlite_scanner")))

    def relation(self, table: str) -> exp.Table:
        return exp.table_(table, db="main", catalog=self.alias, quoted=True)

    def native_relation(self, table: str) -> exp.Table:
        """``"main"."table"``: schema-qualified, so no CTE of a query can stand in for it."""
        return exp.table_(table, db="main", quoted=True)

    def probe(self) -> None:
        conn = self.connect_native()
        try:
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        finally:
            conn.close()

    def datasets(self) -> list[str]:
        """The file's tables and views, read through its own driver."""
        conn = self.connect_native()
        try:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                                "AND name NOT LIKE 'sqlite_%' ORDER BY 1").fetchall()
        finally:
            conn.close()
        return [r[0] for r in rows]

    def driver_failure(self, exc: BaseException) -> Failure | None:
        return errors.classify(exc)

    def connect_native(self) -> sqlite3.Connection:
        path = self.path()
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path.name}")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False,
                               timeout=self.config.statement_timeout_s)
        conn.execute("PRAGMA query_only = 1")
        # the in-process path's second wall: one file, read only, whatever SQL reaches it
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.set_authorizer(_reads_only)
        for name, (fn, arity) in self.functions.items():
            conn.create_function(name, arity, fn, deterministic=True)
        return conn

    def placeholder(self, index: int) -> str:
        return f"?{index + 1}"

    def run_native(self, conn: sqlite3.Connection, sql: str, params: Sequence[Any],
                   timeout_s: float) -> tuple[list[str], Rows]:
        deadline = time.monotonic() + min(timeout_s, self.config.statement_timeout_s)
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 20_000)
        try:
            # SQLite has no decimal type: exact literals compare as the REALs it stores
            cur = conn.execute(sql, tuple(float(p) if isinstance(p, Decimal) else p
                                          for p in params))
            rows = cur.fetchall()
        finally:
            conn.set_progress_handler(None, 0)
        return [d[0] for d in cur.description or ()], rows
