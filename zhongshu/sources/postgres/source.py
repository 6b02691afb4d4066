"""PostgreSQL source: DuckDB's postgres scanner for joins, psycopg 3 for pushdown.

Every connection, native or DuckDB's, carries ``default_transaction_read_only=on`` and the
source's ``statement_timeout``; the password travels in a DuckDB secret (shown redacted), never
in the attach string.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import psycopg
from sqlglot import exp

from zhongshu.errors import QueryTimeout
from zhongshu.sources import _extensions
from zhongshu.sources.base import Rows, sql_literal
from zhongshu.sources.base import Source as BaseSource


class Source(BaseSource):
    kind = "postgres"
    dialect = "postgres"

    @property
    def schema(self) -> str:
        return self.config.schema_ or "public"

    def _options(self) -> str:
        ms = int(self.config.statement_timeout_s * 1000)
        return (f"-c statement_timeout={ms} -c default_transaction_read_only=on "
                f"-c idle_in_transaction_session_timeout={ms}")

    def _params(self) -> dict[str, Any]:
        c = self.config
        params: dict[str, Any] = {"host": c.host, "port": c.port or 5432, "dbname": c.database,
                                  "user": c.user or "postgres", "connect_timeout": 5,
                                  "application_name": "zhongshu-hub", "options": self._options()}
        return self.with_password(params)

    def attach(self, con: duckdb.DuckDBPyConnection) -> None:
        """Attach through a DuckDB secret, read-only, with the source-side timeouts."""
        self.probe()
        _extensions.load(con, "postgres_scanner")
        p = self._params()
        secret = self.create_secret(con, "postgres", p["host"], p["port"], p["dbname"],
                                    p["user"])
        # libpq keywords not covered by the secret travel in the (password-free) attach string
        extra = (f"connect_timeout=5 application_name=zhongshu-hub "
                 f"options='{self._options()}'")
        con.execute(f"ATTACH {sql_literal(extra)} AS {self.alias} "
                    f"(TYPE postgres, SECRET {secret}, READ_ONLY)")

    def relation(self, table: str) -> exp.Table:
        return exp.table_(table, db=self.schema, catalog=self.alias, quoted=True)

    def native_relation(self, table: str) -> exp.Table:
        return exp.table_(table, db=self.schema, quoted=True)

    def probe(self) -> None:
        with psycopg.connect(**self._params(), autocommit=True) as conn:
            conn.execute("SELECT 1").fetchall()

    def connect_native(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(**self._params(), autocommit=True, cursor_factory=psycopg.RawCursor)
        return conn

    def run_native(self, conn: psycopg.Connection[Any], sql: str, params: Sequence[Any],
                   timeout_s: float) -> tuple[list[str], Rows]:
        try:
            cur = conn.execute(sql, list(params))  # type: ignore[arg-type]
            rows = cur.fetchall()
        except psycopg.errors.QueryCanceled:
            raise QueryTimeout(f"the query exceeded the statement timeout of source "
                               f"`{self.name}`") from None
        return [d.name for d in cur.description or ()], rows

