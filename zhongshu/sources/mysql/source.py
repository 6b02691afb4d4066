"""MySQL / MariaDB source: DuckDB's mysql scanner for joins, PyMySQL for pushdown.

Native sessions are ``READ ONLY`` with the server's statement time limit
(``max_statement_time`` on MariaDB, ``max_execution_time`` on MySQL). DuckDB's scanner cannot
set session variables; for queries that span sources the hub interrupts on its own time limit,
and departments may add a per-user limit on the hub's read-only account.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from typing import Any

import duckdb
import pymysql
from sqlglot import exp

from zhongshu.config import SourceConfig, StreamConfig
from zhongshu.sources import _extensions
from zhongshu.sources.base import NativeSQL, Reach, Rows
from zhongshu.sources.errors import Failure
from zhongshu.sources.mysql import errors
from zhongshu.sources.mysql.config import check, connection_params

_MARK = f"zsp{secrets.token_hex(4)}x"
_PLACEHOLDER = re.compile(_MARK + r"(\d+)q")


class Source(NativeSQL):
    kind = "mysql"
    dialect = "mysql"

    @classmethod
    def check_config(cls, config: SourceConfig | StreamConfig) -> None:
        super().check_config(config)
        assert isinstance(config, SourceConfig)
        check(config)

    def _params(self) -> dict[str, Any]:
        return self.with_password(connection_params(self.config))

    def attach(self, con: duckdb.DuckDBPyConnection) -> None:
        """Attach through a DuckDB secret, read-only."""
        self.probe()
        _extensions.load(con, "mysql_scanner")
        # Measured with mysql_scanner 1.5.5: its experimental filter pushdown and its optimizer
        # extension fail with "INTERNAL Error: Failed to bind column reference" (and wrong
        # types for SUM) when a column is grouped on through a subquery, which every dataset
        # view is (`SELECT g, count(*) FROM (SELECT g FROM t) s GROUP BY g`). Both are off;
        # single-source MySQL queries are pushed down whole through PyMySQL instead.
        con.execute("SET mysql_experimental_filter_pushdown = false")
        con.execute("SET disabled_optimizers = 'extension'")
        p = self._params()
        secret = self.create_secret(con, "mysql", p["host"], p["port"], p["database"],
                                    p["user"])
        con.execute(f"ATTACH '' AS {self.alias} (TYPE mysql, SECRET {secret}, READ_ONLY)")

    def reach(self) -> Reach:
        """The server's port (the scanner opens connections as queries need them), and the
        scanner."""
        return Reach(read=(_extensions.extension_path("mysql_scanner"),),
                     connect=(int(connection_params(self.config)["port"]),))

    def relation(self, table: str) -> exp.Table:
        return exp.table_(table, db=self.config.database, catalog=self.alias, quoted=True)

    def native_relation(self, table: str) -> exp.Table:
        """`` `database`.`table` ``: qualified, so no CTE of a query can stand in for it."""
        return exp.table_(table, db=self.config.database, quoted=True)

    def probe(self) -> None:
        conn = pymysql.connect(**self._params())
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        finally:
            conn.close()

    def datasets(self) -> list[str]:
        """The database's tables and views, read through the source's own driver."""
        conn = pymysql.connect(**self._params())
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT table_name FROM information_schema.tables "
                            "WHERE table_schema = %s ORDER BY 1", (self.config.database,))
                return [r[0] for r in cur.fetchall()]
        finally:
            conn.close()

    def driver_failure(self, exc: BaseException) -> Failure | None:
        return errors.classify(exc)

    def connect_native(self) -> pymysql.connections.Connection:
        conn = pymysql.connect(**self._params())
        limit = self.config.statement_timeout_s
        with conn.cursor() as cur:
            try:
                cur.execute(f"SET SESSION max_statement_time = {limit:.3f}")  # MariaDB
            except pymysql.err.MySQLError:
                cur.execute(f"SET SESSION max_execution_time = {int(limit * 1000)}")  # MySQL
            cur.execute("SET SESSION TRANSACTION READ ONLY")
        return conn

    def placeholder(self, index: int) -> str:
        return f"{_MARK}{index}q"

    def run_native(self, conn: pymysql.connections.Connection, sql: str,
                   params: Sequence[Any], timeout_s: float) -> tuple[list[str], Rows]:
        if params:
            sql = _PLACEHOLDER.sub(lambda m: conn.escape(params[int(m.group(1))]), sql)
        with conn.cursor() as cur:
            cur.execute(sql)
            rows = list(cur.fetchall())
            names = [d[0] for d in cur.description or ()]
        return names, rows
