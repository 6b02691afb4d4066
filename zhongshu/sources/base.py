"""The protocol every kind of source implements, and what they share.

A source is a department's existing system. The hub only ever reads it:

* ``attach(con)`` makes it visible to a DuckDB engine, read-only;
* ``relation(table)`` names one of its tables inside that engine;
* ``execute_native(sql, params)`` runs an already-governed query through the source's own
  driver on a read-only connection (kinds with a ``dialect``) — the pushdown path;
* ``health()`` probes it; ``columns(table)`` reads a table's columns for drift checks.

Each source has a concurrency cap (``slot()``) and a source-side statement timeout, so the hub
can never overload a department's production system.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import duckdb
from sqlglot import exp

from zhongshu.config import SourceConfig, read_secret
from zhongshu.errors import SourceBusy, SourceUnavailable

Rows = list[tuple[Any, ...]]


def attach_alias(source_name: str) -> str:
    """The catalog (or schema) name under which a source appears inside DuckDB."""
    return "src_" + re.sub(r"[^a-z0-9_]", "_", source_name.lower())


class Source(ABC):
    """Base of every source kind.

    Subclasses set ``kind`` and, when the source has a native SQL engine that the hub may push
    whole queries down to, ``dialect`` (a sqlglot dialect name).
    """

    kind: ClassVar[str]
    dialect: ClassVar[str | None] = None

    def __init__(self, config: SourceConfig, city_root: Path, owner: str) -> None:
        self.config = config
        self.name = config.name
        self.owner = owner
        self.city_root = city_root
        self.alias = attach_alias(config.name)
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._pool: queue.LifoQueue[Any] = queue.LifoQueue()
        self._secret_cache: str | None = None
        # hub functions a native engine can run in-process (SQLite): name → (function, arity)
        self.functions: dict[str, tuple[Any, int]] = {}

    # --- what every kind implements -------------------------------------------------------

    @abstractmethod
    def attach(self, con: duckdb.DuckDBPyConnection) -> None:
        """Attach this source to ``con`` read-only, under ``self.alias``."""

    @abstractmethod
    def relation(self, table: str) -> exp.Table:
        """The DuckDB-side reference to ``table`` once attached."""

    @abstractmethod
    def probe(self) -> None:
        """Raise if the source cannot be reached right now (a cheap round trip)."""

    def columns(self, con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
        """Column name → DuckDB type of ``table``, read through an attached engine."""
        rel = self.relation(table).sql("duckdb")
        return {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()}

    def allowed_paths(self) -> list[str]:
        """Folders DuckDB must be able to read for this source (file-based kinds only)."""
        return []

    # --- native pushdown ------------------------------------------------------------------

    def native_relation(self, table: str) -> exp.Table:
        """The reference to ``table`` in SQL sent through the native driver."""
        return exp.to_table(table)

    def connect_native(self) -> Any:
        """Open a new read-only native connection (kinds with a dialect)."""
        raise NotImplementedError

    def run_native(self, conn: Any, sql: str, params: Sequence[Any],
                   timeout_s: float) -> tuple[list[str], Rows]:
        """Run ``sql`` on ``conn`` and return column names and rows."""
        raise NotImplementedError

    def placeholder(self, index: int) -> str:
        """How the native driver spells positional parameter ``index`` (0-based)."""
        return f"${index + 1}"

    def execute_native(self, sql: str, params: Sequence[Any], timeout_s: float,
                       wait: bool = True) -> tuple[list[str], Rows, float]:
        """Run a governed query through the source's own driver, read-only, under the cap.

        Returns:
            column names, rows, and the seconds spent running (not waiting for a slot).

        Raises:
            SourceUnavailable: the source cannot be reached or failed in a way that is not the
                query's fault.
        """
        with self.slot(timeout_s, wait):
            conn = self._checkout()
            ok = False
            t0 = time.perf_counter()
            try:
                names, rows = self.run_native(conn, sql, params, timeout_s)
                ok = True
                return names, rows, time.perf_counter() - t0
            finally:
                if ok:
                    self._pool.put(conn)
                else:
                    self._discard(conn)

    def _checkout(self) -> Any:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            try:
                return self.connect_native()
            except Exception as e:
                raise SourceUnavailable(self.unavailable_message(e)) from e

    def _discard(self, conn: Any) -> None:
        try:
            conn.close()
        except Exception:
            pass

    def close(self) -> None:
        """Close pooled native connections."""
        while True:
            try:
                self._discard(self._pool.get_nowait())
            except queue.Empty:
                return

    # --- shared behaviour -----------------------------------------------------------------

    @contextmanager
    def slot(self, timeout_s: float, wait: bool = True) -> Iterator[None]:
        """Hold one of this source's ``max_concurrency`` slots for the duration.

        Raises:
            SourceBusy: no slot freed up within ``timeout_s`` (at once when not ``wait``).
        """
        got = self._slots.acquire(timeout=timeout_s) if wait else self._slots.acquire(False)
        if not got:
            raise SourceBusy(f"source `{self.name}` is at its concurrency cap "
                             f"({self.config.max_concurrency}); try again shortly")
        try:
            yield
        finally:
            self._slots.release()

    def health(self) -> str:
        """``"ok"`` or ``"down: REASON"`` (the reason never holds a password)."""
        try:
            self.probe()
            return "ok"
        except Exception as e:
            return "down: " + self.redact(str(e).strip().splitlines()[0] if str(e).strip()
                                          else type(e).__name__)

    def create_secret(self, con: duckdb.DuckDBPyConnection, kind: str, host: str, port: int,
                      database: str, user: str) -> str:
        """A DuckDB secret holding this source's connection and password (shown redacted by
        DuckDB); returns its name. The password never enters an attach string."""
        name = f"{self.alias}_secret"
        parts = [f"HOST {sql_literal(host)}", f"PORT {int(port)}",
                 f"DATABASE {sql_literal(database)}", f"USER {sql_literal(user)}"]
        pw = self.password()
        if pw is not None:
            parts.append(f"PASSWORD {sql_literal(pw)}")
        con.execute(f"CREATE OR REPLACE SECRET {name} (TYPE {kind}, {', '.join(parts)})")
        return name

    def with_password(self, params: dict[str, Any]) -> dict[str, Any]:
        """Driver connection parameters, with the password added when the source has one."""
        pw = self.password()
        return {**params, "password": pw} if pw is not None else params

    def password(self) -> str | None:
        """The source's password from secrets, or None when it has none."""
        if not self.config.password_secret:
            return None
        if self._secret_cache is None:
            self._secret_cache = read_secret(self.city_root, self.config.password_secret)
        return self._secret_cache

    def redact(self, text: str) -> str:
        """``text`` with this source's password and any ``password=…`` removed."""
        pw = self._secret_cache
        if pw:
            text = text.replace(pw, "***")
        return re.sub(r"(?i)(password|passwd)\s*=\s*\S+", r"\1=***", text)

    def unavailable_message(self, err: BaseException) -> str:
        """A safe, one-line explanation for a failure to reach this source."""
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return f"source `{self.name}` is unavailable: {self.redact(first)}"

    def path(self) -> Path:
        """The source's file or folder, resolved against the city folder."""
        assert self.config.path
        p = Path(self.config.path)
        return p if p.is_absolute() else (self.city_root / p)


def sql_literal(value: Any) -> str:
    """``value`` as a single-quoted SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


_TYPE_FAMILIES = {
    "int": ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
            "UINTEGER", "UBIGINT", "INT", "INT1", "INT2", "INT4", "INT8"),
    "float": ("FLOAT", "DOUBLE", "REAL", "DECIMAL"),
    "text": ("VARCHAR", "TEXT", "STRING", "CHAR", "BPCHAR", "UUID", "JSON"),
    "time": ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "DATETIME",
             "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"),
    "date": ("DATE",),
    "bool": ("BOOLEAN", "BOOL"),
    "blob": ("BLOB", "BYTEA"),
}


def type_family(type_name: str) -> str:
    """Coarse family of a DuckDB type name (int, float, text, time, date, bool, …)."""
    t = type_name.upper().split("(")[0].strip()
    for fam, names in _TYPE_FAMILIES.items():
        if t in names:
            return fam
    if t.endswith("[]") or t.startswith(("LIST", "STRUCT", "MAP")):
        return "nested"
    return t.lower()


def compatible(declared: str, actual: str) -> bool:
    """Whether a source column of type ``actual`` can serve a declared column type.

    Integers may serve a float or decimal column; everything else must stay in its family.
    """
    d, a = type_family(declared), type_family(actual)
    return d == a or (d == "float" and a == "int")
