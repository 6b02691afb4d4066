"""Running a plan: on the source's own engine (pushdown) or on the DuckDB workers, which this
module also builds and rebuilds; engine and driver errors become protocol errors here.

Both paths return the same columns with the same types (those DuckDB gives the query), so an
answer never depends on the path taken. Each run is given the time left of its exchange's
limit (``query.deadline``).
"""

from __future__ import annotations

import itertools
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from zhongshu.catalog.catalog import Catalog
from zhongshu.config import HubSettings
from zhongshu.errors import (
    QueryInvalid,
    QueryTimeout,
    SecondWallUnavailable,
    SourceUnavailable,
    ZhongshuError,
)
from zhongshu.query.convert import coerce_rows, coerced_to_arrow
from zhongshu.query.health import SourceHealth
from zhongshu.query.plan import Plan, Template
from zhongshu.query.types import ColumnType
from zhongshu.query.worker import WorkerError, WorkerPool, WorkerSpec
from zhongshu.sources import Source
from zhongshu.sources.base import Files
from zhongshu.sources.errors import failure_reason, safe_message

log = logging.getLogger("zhongshu.query")
_T = TypeVar("_T")


class NativeMismatch(Exception):
    """The source's driver gave a value that is not what DuckDB would give for the column
    (an infinite or out-of-range date, say): the DuckDB path must answer instead."""


@dataclass
class Result:
    """One answered query: an Arrow table, or (from a source's own driver) Python rows whose
    values are already what the table would hold — built into a table only when asked."""

    schema: pa.Schema
    truncated: bool
    plan: Plan
    path: str  # "native:<source>" or "duckdb"
    _table: pa.Table | None = None
    _rows: list[list[Any]] | None = None
    #: the people's identifiers the query named, ``(kind, normal form)`` (``policy.subjects``)
    identifiers: frozenset[tuple[str, str]] = frozenset()
    #: the receipts of the peer hubs' answers it was built from (``query.remote``)
    upstream: list[dict[str, Any]] = field(default_factory=list)
    #: the peers missing from a partial answer: ``{"hub", "code", "message"}``
    partial: list[dict[str, str]] = field(default_factory=list)

    @property
    def table(self) -> pa.Table:
        if self._table is None:
            assert self._rows is not None
            self._table = coerced_to_arrow(self._rows, self.schema)  # coerced by the driver's path
        return self._table

    @property
    def native_rows(self) -> list[list[Any]] | None:
        """The driver's rows (coerced), when the source's own engine answered."""
        return self._rows

    @property
    def num_rows(self) -> int:
        return len(self._rows) if self._rows is not None else int(self.table.num_rows)

    def rows(self) -> list[list[Any]]:
        """The rows as lists of Python values (JSON encoding reads these)."""
        if self._rows is not None:
            return self._rows
        cols = [c.to_pylist() for c in self.table.columns]
        return [list(r) for r in zip(*cols, strict=True)]


class Executor:
    """Runs plans on either path, over DuckDB workers it owns.

    Args:
        on_rebuild: called after the engine was replaced (cached plans name the old one).
        reuse: the workers of the configuration serving before a reload; shared instead of
            starting new ones when they reach exactly the sources this one would.
    """

    def __init__(self, catalog: Catalog, settings: HubSettings, pseudonym_secret: bytes,
                 health: SourceHealth, on_rebuild: Callable[[], None],
                 reuse: WorkerPool | None = None) -> None:
        self.catalog = catalog
        self.settings = settings
        self.health = health
        self._secret = pseudonym_secret
        self._on_rebuild = on_rebuild
        self._generation = itertools.count(1 if reuse is None else reuse.generation + 1)
        self._lock = threading.Lock()
        self.engine = self._build(reuse=reuse)

    # --- the DuckDB workers -------------------------------------------------------------------

    def _worker_user(self) -> str | None:
        """The user DuckDB workers drop to, if the file sources are readable by it."""
        user = self.settings.worker_user or None
        if user is None or os.geteuid() != 0:
            return user
        blocked = [str(p) for s in self.catalog.sources.values() if isinstance(s, Files)
                   for p in [s.path()] if not readable_by_others(p)]
        if blocked:
            # Landlock confines them all the same (``query.wall``); this was a second layer
            log.info("the DuckDB workers keep the hub's user: a source is not readable by "
                     "`%s` (chmod o+rx on every folder above it to add that layer)", user)
            return None
        return user

    def _build(self, include: frozenset[str] = frozenset(),
               reuse: WorkerPool | None = None) -> WorkerPool:
        up = [(s.config, str(self.catalog.city.root), s.owner)
              for n, s in self.catalog.sources.items() if self.health.is_up(n) or n in include]
        spec = WorkerSpec(up, self.settings, self._secret, self._worker_user(),
                          next(self._generation))
        if reuse is not None and reuse.serves(spec):
            try:
                pool = reuse.share()
            except ZhongshuError:  # stopped meanwhile: start our own
                pool = WorkerPool(spec, self.settings.duckdb_workers)
        else:
            pool = WorkerPool(spec, self.settings.duckdb_workers)
        if pool.wall is None:
            if not self.settings.unsafe_single_wall:
                pool.close()
                raise SecondWallUnavailable(
                    f"the DuckDB workers cannot be confined to their sources "
                    f"({pool.wall_problem}); the hub does not serve on the firewall alone. "
                    "Run it on Linux ≥ 5.13 with Landlock enabled, or start it with "
                    "--unsafe-single-wall ([hub] unsafe_single_wall = true) to accept that")
            log.warning("the DuckDB workers are not confined (%s): started with "
                        "--unsafe-single-wall, the second wall rests on the firewall and "
                        "DuckDB's settings alone", pool.wall_problem)
        for name, reason in pool.failed.items():
            self.health.mark_down(name, reason)
        return pool

    @property
    def generation(self) -> int:
        """Which engine plans are built for (it changes when the engine is rebuilt)."""
        return self.engine.generation

    def attached(self) -> frozenset[str]:
        """The sources the current engine reaches."""
        return frozenset(self.engine.attached)

    def rebuild(self, include: frozenset[str] = frozenset()) -> None:
        """Replace the engine (``include``: sources to attach even if last seen down); the old
        one is closed once the queries it runs have had their time."""
        with self._lock:
            old = self.engine
            self.engine = self._build(include)
        self._on_rebuild()
        threading.Timer(self.settings.query_timeout_s + 1, old.close).start()

    def close(self) -> None:
        """Close the engine and the sources' native connections."""
        self.engine.close()
        for src in self.catalog.sources.values():
            src.close()

    # --- running ----------------------------------------------------------------------------

    def describe(self, plan: Plan, params: tuple[Any, ...], timeout_s: float | None = None
                 ) -> tuple[pa.Schema | None, list[ColumnType]]:
        """The schema DuckDB gives the plan's answer (what the native path must match; None
        if a column has no Arrow form), and DuckDB's own type of each column
        (``query.types`` decides how each travels)."""
        sql = f"SELECT * FROM ({plan.duckdb_sql}) AS _d LIMIT 0"
        table, types = self._on_worker(plan, lambda t: self.engine.describe(
            sql, list(params), t), timeout_s)
        return (None if table is None else table.schema), types

    def native(self, plan: Plan, template: Template, wait: bool = True,
               timeout_s: float | None = None) -> tuple[list[list[Any]], float]:
        """Run the plan on its source's own engine: rows coerced to the plan's schema, and the
        seconds the source took.

        Raises:
            NativeMismatch: the rows hold a value DuckDB's type of its column cannot hold
                as the driver gave it (the caller runs the plan on DuckDB instead).
        """
        src = plan.native
        assert src is not None and plan.native_sql is not None and plan.schema is not None
        timeout = self.settings.query_timeout_s if timeout_s is None else timeout_s
        for attempt in (1, 2):
            try:
                _names, rows, seconds = src.execute_native(plan.native_sql, template.params,
                                                           timeout, wait)
            except ZhongshuError:
                raise
            except Exception as e:
                # a pooled connection that died with a source restart: a SELECT is safe to
                # run again once, on fresh connections, if the source answers
                if attempt == 1 and src.is_transient(e) and src.health() == "ok":
                    src.close()
                    continue
                if _conversion_error(e):
                    raise NativeMismatch(type(e).__name__) from e
                raise self.translate(e, plan.sources) from e
            try:
                return coerce_rows(rows, plan.schema), seconds
            except (ValueError, OverflowError, TypeError) as e:
                raise NativeMismatch(type(e).__name__) from e
        raise AssertionError("unreachable")

    def duckdb(self, plan: Plan, params: tuple[Any, ...], timeout_s: float | None = None
               ) -> tuple[pa.Table, float]:
        """Run the plan on a DuckDB worker: the table, and the seconds it took."""
        sql = plan.duckdb_sql
        return self._on_worker(plan, lambda t: self.engine.execute(sql, list(params), t),
                               timeout_s)

    def _on_worker(self, plan: Plan, run: Callable[[float], _T], timeout_s: float | None
                   ) -> _T:
        """``run(seconds left)`` holding a slot of each of the plan's sources, with the
        engine's errors translated."""
        timeout = self.settings.query_timeout_s if timeout_s is None else timeout_s
        t0 = time.monotonic()
        with ExitStack() as stack:
            for src in plan.sources:
                stack.enter_context(src.slot(timeout))
            left = timeout - (time.monotonic() - t0)
            if left <= 0:
                raise QueryTimeout(f"the query exceeded the hub's time limit of {timeout:g} s "
                                   "waiting for its sources; try again shortly")
            try:
                return run(left)
            except WorkerError as e:
                if e.kind == "InterruptException":
                    raise QueryTimeout(f"the query exceeded the hub's time limit of "
                                       f"{timeout:g} s; narrow it (filters, LIMIT) or "
                                       "aggregate") from None
                raise self.translate(e, plan.sources) from e

    def translate(self, e: BaseException, sources: list[Source]) -> ZhongshuError:
        """The protocol error for an engine or driver error: a lost source marks it down
        (``source_unavailable``), anything else is the query's (``query_invalid``, without
        quoted values or internal names)."""
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if any(s.is_transient(e) for s in sources):
            down = [s for s in sources if s.health() != "ok"]
            for s in down:
                s.unavailable_message(e)  # logs the driver's text, password removed
                self.health.mark_down(s.name, failure_reason(e))
            if down:
                return SourceUnavailable(f"source `{down[0].name}` is unavailable; other "
                                         "datasets keep working")
            # the sources answer again: the engine's connections are stale, start afresh
            self.rebuild()
            return SourceUnavailable("a source connection was reset; retry the query")
        return QueryInvalid("the query could not be run: " + safe_message(msg))


def _conversion_error(e: BaseException) -> bool:
    """Whether a driver failed to turn a value into Python (psycopg's loaders raise a
    ``DataError`` without a server SQLSTATE for an infinite date), not the query."""
    if isinstance(e, (ValueError, OverflowError)):
        return True
    return type(e).__name__ == "DataError" and getattr(e, "sqlstate", "") is None


def readable_by_others(path: Path) -> bool:
    """Whether a user with no special rights can reach ``path`` (x on every folder above it)
    and read it (r on the file, or r+x on the folder)."""
    path = path.resolve()
    for parent in path.parents:
        if parent.exists() and not parent.stat().st_mode & stat.S_IXOTH:
            return False
    mode = path.stat().st_mode if path.exists() else 0
    need = stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0)
    return bool(mode & need == need)
