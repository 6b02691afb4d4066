"""The query service: catalog, engine, source health, plan cache, and running one exchange.

``QueryService.run(caller, sql, purpose)`` is the path of one exchange from parsing to an
Arrow table; the protocol adds authentication, encoding and (later) the ledger around it.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import stat
import threading
import time
from collections import OrderedDict
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from zhongshu.catalog.catalog import Catalog
from zhongshu.errors import (
    DatasetUnavailable,
    QueryInvalid,
    QueryTimeout,
    SourceBusy,
    SourceUnavailable,
    SqlSyntax,
    ZhongshuError,
)
from zhongshu.policy.firewall import TOO_DEEP, Context
from zhongshu.policy.grants import Grants
from zhongshu.policy.identity import Caller
from zhongshu.policy.masking import PSEUDONYM_FN, PseudonymKeys
from zhongshu.query.convert import coerce_rows, rows_to_arrow
from zhongshu.query.plan import Plan, Template, build_plan, templatize
from zhongshu.query.worker import WorkerError, WorkerPool, WorkerSpec
from zhongshu.sources import Source
from zhongshu.stores import RateCounters

log = logging.getLogger("zhongshu.query")


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

    @property
    def table(self) -> pa.Table:
        if self._table is None:
            assert self._rows is not None
            self._table = rows_to_arrow(self._rows, self.schema)
        return self._table

    @property
    def num_rows(self) -> int:
        return len(self._rows) if self._rows is not None else self.table.num_rows

    def rows(self) -> list[list[Any]]:
        """The rows as lists of Python values (JSON encoding reads these)."""
        if self._rows is not None:
            return self._rows
        cols = [c.to_pylist() for c in self.table.columns]
        return [list(r) for r in zip(*cols, strict=True)]


@dataclass
class SourceState:
    status: str  # "ok" or "down"
    reason: str = ""
    since: float = 0.0


_CONNECTION_HINTS = ("connect", "connection", "server closed", "lost connection",
                     "unable to open", "no such file", "terminating", "broken pipe",
                     "could not receive", "eof", "gone away", "shutdown")


class QueryService:
    """Runs governed queries for one city."""

    def __init__(self, catalog: Catalog, rates: RateCounters, monitor: bool = True) -> None:
        self.city = catalog.city
        city = self.city
        self.settings = city.hub
        self.store = catalog.store
        self.catalog = catalog
        self.catalog.check()
        self._rates = rates
        self.grants = Grants(self.catalog, rates)
        self._grants_version = self.store.version()
        self._grants_checked = time.monotonic()
        self.keys = PseudonymKeys.load(city.state_dir / "pseudonym.key")
        for src in self.catalog.sources.values():
            if src.kind == "sqlite":  # keyed pseudonyms computed inside SQLite: pushdown holds
                src.functions[PSEUDONYM_FN] = (self.keys.pseudonym, 2)
        self.state: dict[str, SourceState] = {}
        now = time.time()
        for name, ds in ((d.source.name, d) for d in self.catalog.datasets.values()):
            if ds.status == "source_down":
                self.state[name] = SourceState("down", ds.reason, now)
        for name in self.catalog.sources:
            self.state.setdefault(name, SourceState("ok", "", now))
        self._generation = itertools.count(1)
        self._lock = threading.Lock()
        self.engine = self._build_engine()
        self._plans: OrderedDict[tuple[Any, ...], Plan] = OrderedDict()
        self._stop = threading.Event()
        if monitor:
            threading.Thread(target=self._monitor, name="zhongshu-health", daemon=True).start()

    # --- engine and health ----------------------------------------------------------------

    def _worker_user(self) -> str | None:
        """The user DuckDB workers drop to, if the file sources are readable by it."""
        user = self.settings.worker_user or None
        if user is None or os.geteuid() != 0:
            return user
        blocked = [str(p) for s in self.catalog.sources.values() if s.config.path
                   for p in [s.path()] if not readable_by_others(p)]
        if blocked:
            log.warning("the DuckDB workers cannot drop to `%s`: %s not readable by other "
                        "users (chmod o+rx on every folder above it, or move the city); they "
                        "run as root, and the second wall rests on the firewall and DuckDB's "
                        "settings alone", user, blocked[0])
            return None
        return user

    def _build_engine(self, include: frozenset[str] = frozenset()) -> WorkerPool:
        up = [(s.config, str(self.city.root), s.owner) for n, s in self.catalog.sources.items()
              if self.state[n].status == "ok" or n in include]
        pool = WorkerPool(WorkerSpec(up, self.settings, self.keys.secret, self._worker_user(),
                                     next(self._generation)),
                          self.settings.duckdb_workers)
        for name, reason in pool.failed.items():
            self._mark_down(name, reason)
        return pool

    def _mark_down(self, name: str, reason: str) -> None:
        st = self.state[name]
        if st.status != "down":
            log.warning("source %s is down: %s", name, reason)
            self.state[name] = SourceState("down", reason, time.time())

    def _rebuild(self, include: frozenset[str] = frozenset()) -> None:
        with self._lock:
            old = self.engine
            self.engine = self._build_engine(include)
            self._plans.clear()
        threading.Timer(self.settings.query_timeout_s + 1, old.close).start()

    def check_sources(self) -> None:
        """Probe every source once; re-check and re-attach those that came back."""
        recovered = []
        for name, src in self.catalog.sources.items():
            health = src.health()
            if health == "ok":
                if self.state[name].status == "down" or name not in self.engine.attached:
                    recovered.append(name)
            else:
                self._mark_down(name, health.removeprefix("down: "))
        for name in recovered:
            self.catalog.check(only_source=name)
            self.catalog.sources[name].close()  # pooled native connections died with it
            log.warning("source %s is back; re-attaching under a fresh engine", name)
        if recovered:
            # swap the engine in first: a source is "ok" only once queries can reach it
            self._rebuild(include=frozenset(recovered))
            for name in recovered:
                self.state[name] = SourceState("ok", "", time.time())

    def _monitor(self) -> None:
        while not self._stop.wait(self.settings.health_interval_s):
            try:
                self.check_sources()
            except Exception:
                log.exception("source health check failed")

    def close(self) -> None:
        """Stop the monitor and close the engine and native connections."""
        self._stop.set()
        self.engine.close()
        for src in self.catalog.sources.values():
            src.close()

    def health(self) -> dict[str, str]:
        """Source name → ``ok`` or ``down: REASON`` (as last observed)."""
        return {n: "ok" if s.status == "ok" else f"down: {s.reason}"
                for n, s in sorted(self.state.items())}

    # --- queries --------------------------------------------------------------------------

    def _cached(self, caller: Caller, sql: str, purpose: str, limit: int | None
                ) -> tuple[Plan | None, Template, tuple[Any, ...]]:
        template = templatize(sql)
        key = (template.key, caller.name, purpose, limit, self.engine.generation)
        return self._plans.get(key), template, key

    def refresh_grants(self, force: bool = False) -> None:
        """Reload grants when the store says they changed (checked at most once a second):
        a grant added or revoked by the CLI in another process applies within a second."""
        now = time.monotonic()
        if not force and now - self._grants_checked < 1.0:
            return
        self._grants_checked = now
        version = self.store.version()
        if force or version != self._grants_version:
            with self._lock:
                self.grants = Grants(self.catalog, self._rates)
                self._grants_version = version
                self._plans.clear()

    def plan(self, caller: Caller, sql: str, purpose: str, limit: int | None = None
             ) -> tuple[Plan, Template]:
        """The (cached) plan of ``sql`` for this caller and purpose."""
        self.refresh_grants()
        try:
            plan, template, key = self._cached(caller, sql, purpose, limit)
            if plan is not None:
                return plan, template
            ctx = Context(caller=caller, purpose=purpose, catalog=self.catalog,
                          grants=self.grants)
            plan = build_plan(template, ctx, self.settings.row_cap, limit)
        except RecursionError:
            # sqlglot walks the tree recursively: a query too deep for it is refused whole
            raise SqlSyntax(TOO_DEEP) from None
        with self._lock:
            self._plans[key] = plan
            while len(self._plans) > self.settings.plan_cache_size:
                self._plans.popitem(last=False)
        return plan, template

    def run(self, caller: Caller, sql: str, purpose: str, limit: int | None = None,
            engine: str = "auto") -> Result:
        """Answer ``sql`` for ``caller`` and ``purpose``.

        Args:
            engine: ``auto`` (push down to the source when the plan allows) or ``duckdb``
                (always the DuckDB engine; for checks and debugging).

        Raises:
            ZhongshuError: a protocol error (refusal, bad query, source down, timeout…).
        """
        plan, template = self.plan(caller, sql, purpose, limit)
        return self.execute(plan, template, engine)

    def explain(self, caller: Caller, sql: str, purpose: str, limit: int | None = None
                ) -> dict[str, Any]:
        """What would leave for this query, without running it: the rewritten SQL, the path,
        and for every dataset the columns read and the grant, masks and row scope that apply.

        Raises:
            ZhongshuError: the same refusal the query itself would get.
        """
        plan, template = self.plan(caller, sql, purpose, limit)
        datasets = []
        seen: set[str] = set()
        for ref in plan.refs:
            a = ref.access
            if a is None or ref.dataset.name in seen:
                continue
            seen.add(ref.dataset.name)
            grant = a.grant.id if a.grant else "owner"
            datasets.append({
                "dataset": ref.dataset.name, "owner": ref.dataset.owner,
                "columns": [{"column": c, "grant": grant,
                             "mask": a.masking[c].kind if c in a.masking else None}
                            for c in plan.columns_read.get(ref.dataset.name, [])],
                "row_scope": a.row_scope})
        governed = plan.governed.sql("duckdb", pretty=True) if plan.governed else ""
        return {"caller": caller.name, "purpose": purpose, "governed_sql": governed,
                "path": f"native:{plan.native.name}" if plan.native else "duckdb",
                "native_sql": plan.native_sql, "parameters": list(template.params),
                "datasets": datasets, "row_scope": plan.row_scope}

    def quick(self, caller: Caller, sql: str, purpose: str, limit: int | None = None
              ) -> Result | None:
        """Answer at once on the calling thread if this query's plan is cached and measured
        sub-millisecond on the source's own engine; otherwise None (run it on a worker).

        Handing a 50 µs SQLite lookup to a thread pool costs more than the lookup, and under
        load the threads convoy on the GIL; the event loop answers such queries itself.
        """
        self.refresh_grants()
        plan, template, _key = self._cached(caller, sql, purpose, limit)
        if plan is None or not plan.is_quick():
            return None
        try:
            return self.execute(plan, template, wait=False)
        except SourceBusy:
            return None

    def execute(self, plan: Plan, template: Template, engine: str = "auto",
                wait: bool = True) -> Result:
        """Run a plan with the template's parameters (see :meth:`run`).

        Args:
            wait: wait for a free slot of the source; when False and none is free, raise
                ``SourceBusy`` at once.
        """
        for grant in plan.grants:
            self.grants.spend(grant)
        for d in plan.datasets.values():
            if d.status == "drift":
                raise DatasetUnavailable(f"dataset `{d.name}` is unavailable: its source "
                                         "schema changed; the owner has been told")
        for src in plan.sources:
            st = self.state[src.name]
            if st.status != "ok" or src.name not in self.engine.attached:
                raise SourceUnavailable(
                    f"source `{src.name}` of member `{src.owner}` is unavailable since "
                    f"{time.strftime('%H:%M:%S', time.localtime(st.since))}; other datasets "
                    "keep working")
        choice = plan.choose() if engine == "auto" else "duckdb"
        if choice == "native" and plan.schema is None:
            plan.schema = self._run_duckdb(plan, template.params, describe=True)[0].schema
        if choice == "native":
            assert plan.native is not None and plan.schema is not None
            rows, seconds = self._run_native(plan, template, wait)
            truncated = len(rows) > plan.row_limit
            result = Result(plan.schema, truncated, plan, f"native:{plan.native.name}",
                            _rows=rows[:plan.row_limit] if truncated else rows)
        else:
            table, seconds = self._run_duckdb(plan, template.params)
            truncated = table.num_rows > plan.row_limit
            result = Result(table.schema, truncated, plan, "duckdb",
                            _table=table.slice(0, plan.row_limit) if truncated else table)
        if engine == "auto":
            plan.record(choice, seconds)
        return result

    def _run_native(self, plan: Plan, template: Template, wait: bool = True
                    ) -> tuple[list[list[Any]], float]:
        src = plan.native
        assert src is not None and plan.native_sql is not None and plan.schema is not None
        for attempt in (1, 2):
            try:
                _names, rows, seconds = src.execute_native(plan.native_sql, template.params,
                                                           self.settings.query_timeout_s, wait)
                return coerce_rows(rows, plan.schema), seconds
            except ZhongshuError:
                raise
            except Exception as e:
                # a pooled connection that died with a source restart: a SELECT is safe to
                # run again once, on fresh connections, if the source answers
                if attempt == 1 and _is_connection_error(e) and src.health() == "ok":
                    src.close()
                    continue
                raise self._translate(e, plan.sources) from None
        raise AssertionError("unreachable")

    def _run_duckdb(self, plan: Plan, params: tuple[Any, ...], describe: bool = False
                    ) -> tuple[pa.Table, float]:
        sql = plan.duckdb_sql
        if describe:
            sql = f"SELECT * FROM ({sql}) AS _d LIMIT 0"
        timeout = self.settings.query_timeout_s
        with ExitStack() as stack:
            for src in plan.sources:
                stack.enter_context(src.slot(timeout))
            try:
                return self.engine.execute(sql, list(params), timeout)
            except WorkerError as e:
                if e.kind == "InterruptException":
                    raise QueryTimeout(f"the query exceeded the hub's time limit of "
                                       f"{timeout:g} s; narrow it (filters, LIMIT) or "
                                       "aggregate") from None
                raise self._translate(e, plan.sources) from None

    def _translate(self, e: BaseException, sources: list[Source]) -> ZhongshuError:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if _is_connection_error(e):
            down = [s for s in sources if s.health() != "ok"]
            for s in down:
                self._mark_down(s.name, s.unavailable_message(e))
            if down:
                return SourceUnavailable(f"source `{down[0].name}` is unavailable; other "
                                         "datasets keep working")
            # the sources answer again: the engine's connections are stale, start afresh
            self._rebuild()
            return SourceUnavailable("a source connection was reset; retry the query")
        return QueryInvalid("the query could not be run: " + _sanitize(msg))


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


def _is_connection_error(e: BaseException) -> bool:
    msg = str(e).lower()
    return (any(h in msg for h in _CONNECTION_HINTS) or getattr(e, "kind", "") == "IOException"
            or isinstance(e, ConnectionError))


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")  # engines quote data values either way


def _sanitize(msg: str) -> str:
    """An engine error without quoted values or internal relation names."""
    msg = re.sub(r"^[A-Za-z ]*Error: ", "", msg)
    msg = _QUOTED.sub("…", msg)
    msg = re.sub(r"\b(src_\w+|__raw__\w+)", "…", msg)
    return msg[:300]
