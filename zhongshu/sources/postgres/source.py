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

from zhongshu.config import SourceConfig, StreamConfig
from zhongshu.sources import _extensions
from zhongshu.sources.base import NativeSQL, Reach, Rows, sql_literal
from zhongshu.sources.errors import Failure
from zhongshu.sources.postgres import errors
from zhongshu.sources.postgres.config import check, connection_params, options


class Source(NativeSQL):
    kind = "postgres"
    dialect = "postgres"

    @classmethod
    def check_config(cls, config: SourceConfig | StreamConfig) -> None:
        super().check_config(config)
        assert isinstance(config, SourceConfig)
        check(config)

    @property
    def schema_name(self) -> str:
        """The PostgreSQL schema the source's tables are read from."""
        return self.config.schema_ or "public"

    def _params(self) -> dict[str, Any]:
        return self.with_password(connection_params(self.config))

    def attach(self, con: duckdb.DuckDBPyConnection) -> None:
        """Attach through a DuckDB secret, read-only, with the source-side timeouts."""
        self.probe()
        _extensions.load(con, "postgres_scanner")
        p = self._params()
        secret = self.create_secret(con, "postgres", p["host"], p["port"], p["dbname"],
                                    p["user"])
        # libpq keywords not covered by the secret travel in the (password-free) attach string
        extra = (f"connect_timeout=5 application_name=zhongshu-hub "
                 f"options='{options(self.config)}'")
        con.execute(f"ATTACH {sql_literal(extra)} AS {self.alias} "
                    f"(TYPE postgres, SECRET {secret}, READ_ONLY)")

    def reach(self) -> Reach:
        """The server's port (the scanner opens connections as queries need them), and the
        scanner."""
        return Reach(read=(_extensions.extension_path("postgres_scanner"),),
                     connect=(int(connection_params(self.config)["port"]),))

    def relation(self, table: str) -> exp.Table:
        return exp.table_(table, db=self.schema_name, catalog=self.alias, quoted=True)

    def native_relation(self, table: str) -> exp.Table:
        return exp.table_(table, db=self.schema_name, quoted=True)

    def probe(self) -> None:
        with psycopg.connect(**self._params(), autocommit=True) as conn:
            conn.execute("SELECT 1").fetchall()

    def datasets(self) -> list[str]:
        """The schema's tables and views, read through the source's own driver."""
        with psycopg.connect(**self._params(), autocommit=True) as conn:
            rows = conn.execute("SELECT table_name FROM information_schema.tables "
                                "WHERE table_schema = %s ORDER BY 1",
                                [self.schema_name]).fetchall()
        return [r[0] for r in rows]

    def driver_failure(self, exc: BaseException) -> Failure | None:
        return errors.classify(exc)

    def connect_native(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(**self._params(), autocommit=True, cursor_factory=psycopg.RawCursor)
        return conn

    def run_native(self, conn: psycopg.Connection[Any], sql: str, params: Sequence[Any],
                   timeout_s: float) -> tuple[list[str], Rows]:
        cur = conn.execute(sql, list(params))
        rows = cur.fetchall()
        return [d.name for d in cur.description or ()], rows
