"""The query service: one exchange from SQL text to an answer, for one city.

``QueryService.run(caller, sql, purpose)`` is the path of one exchange from parsing to an
Arrow table; the protocol adds authentication, encoding and the ledger around it. The work is
shared out: ``query.health`` keeps the sources' state, ``query.cache`` the plans by shape,
``query.plan`` builds a plan from policy's governed query, ``query.execute`` runs it and owns
the DuckDB workers. This class holds the grants (reloaded when the store says they changed)
and puts the parts together.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from zhongshu.catalog.catalog import Catalog
from zhongshu.errors import SourceUnavailable, ZhongshuError
from zhongshu.policy.firewall import govern
from zhongshu.policy.grants import Grants
from zhongshu.policy.identity import Caller
from zhongshu.policy.lookups import LookupBudget
from zhongshu.policy.masking import PSEUDONYM_FN, PseudonymKeys
from zhongshu.query.cache import PlanCache
from zhongshu.query.execute import Executor, Result
from zhongshu.query.health import SourceHealth
from zhongshu.query.inference import fixed_aggregate_errors, spend_lookups
from zhongshu.query.plan import Plan, Template, build_plan, templatize
from zhongshu.sources.base import NativeSQL
from zhongshu.stores import LookupCounts, RateCounters
from zhongshu.stores.memory import MemoryLookupCounts

log = logging.getLogger("zhongshu.query")
__all__ = ["Lookup", "QueryService", "Result"]


@dataclass(frozen=True)
class Lookup:
    """A query's template and cache key, and its cached plan if there is one."""

    template: Template
    key: tuple[Any, ...]
    plan: Plan | None


class QueryService:
    """Runs governed queries for one city.

    Args:
        catalog: the city's catalog (its datasets are checked against their sources here).
        rates: the rate counters grants spend from (shared across grant reloads).
        monitor: probe the sources in the background and re-attach those that come back.
        lookups: the store of pseudonym lookups budgets spend from (default: in memory).
    """

    def __init__(self, catalog: Catalog, rates: RateCounters, monitor: bool = True,
                 lookups: LookupCounts | None = None) -> None:
        self.catalog = catalog
        self.city = catalog.city
        self.settings = self.city.hub
        self.store = catalog.store
        catalog.check()
        self._rates = rates
        self._grants = Grants(catalog, rates)
        self._grants_version = self.store.version()
        self._grants_checked = time.monotonic()
        self._lock = threading.Lock()
        keys = PseudonymKeys.load(self.city.state_dir / "pseudonym.key")
        self.lookups = LookupBudget(lookups or MemoryLookupCounts(), keys.secret)
        for src in catalog.sources.values():
            if isinstance(src, NativeSQL) and src.kind == "sqlite":
                # keyed pseudonyms computed inside SQLite: pushdown holds
                src.functions[PSEUDONYM_FN] = (keys.pseudonym, 2)
        self.sources = SourceHealth(catalog)
        self.plans = PlanCache(self.settings.plan_cache_size)
        self.executor = Executor(catalog, self.settings, keys.secret, self.sources,
                                 on_rebuild=self.plans.clear)
        if monitor:
            self.sources.monitor(self.settings.health_interval_s, self.check_sources)

    @property
    def grants(self) -> Grants:
        """The grants in force (replaced as a whole when they change)."""
        return self._grants

    # --- sources --------------------------------------------------------------------------

    def check_sources(self) -> None:
        """Probe every source once; re-check and re-attach those that came back."""
        recovered = self.sources.probe(self.executor.attached())
        if recovered:
            # swap the engine in first: a source is "ok" only once queries can reach it
            self.executor.rebuild(include=frozenset(recovered))
            self.sources.mark_up(recovered)

    def health(self) -> dict[str, str]:
        """Source name → ``ok`` or ``down: REASON`` (as last observed)."""
        return self.sources.report()

    def close(self) -> None:
        """Stop the monitor and close the engine and native connections."""
        self.sources.stop()
        self.executor.close()

    # --- grants ---------------------------------------------------------------------------

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
                self._grants = Grants(self.catalog, self._rates)
                self._grants_version = version
                self.plans.clear()

    # --- queries --------------------------------------------------------------------------

    def lookup(self, caller: Caller, sql: str, purpose: str, limit: int | None = None
               ) -> Lookup:
        """The query's template and its cached plan, if any (cheap: no parsing; grants are
        reloaded first if they changed)."""
        self.refresh_grants()
        template = templatize(sql)
        key = (template.key, caller.name, purpose, limit, self.executor.generation)
        plan = self.plans.get(key)
        if plan is not None and not self._still_granted(plan, caller, purpose):
            self.plans.drop(key)  # rebuilt under the grants in force now (or refused)
            plan = None
        return Lookup(template, key, plan)

    def _still_granted(self, plan: Plan, caller: Caller, purpose: str) -> bool:
        """Whether a cached plan may run now: every grant it was built under (those its row
        scopes read through included) is still in force, and every dataset would be decided
        today as it was — the same grant (not expired, not revoked, not replaced by a reload
        with another row scope or masks) or still the caller's own."""
        grants = self.grants
        if not all(grants.holds(g) for g in plan.grants):  # row scopes' grants included
            return False
        for ref in plan.refs:
            if ref.access is None:
                continue
            try:
                now = grants.decide(caller, ref.dataset, purpose)
            except ZhongshuError:
                return False
            if now.grant is not ref.access.grant:
                return False
        return True

    def prepare(self, found: Lookup, caller: Caller, purpose: str, limit: int | None = None
                ) -> Plan:
        """The plan of a looked-up query: the cached one, or one built and cached now."""
        if found.plan is not None:
            return found.plan
        governed = govern(found.template.text, caller=caller, purpose=purpose,
                          catalog=self.catalog, grants=self.grants,
                          parameters=found.template.parameters)
        plan = build_plan(found.template, governed, self.settings.row_cap, limit)
        self.plans.put(found.key, plan)
        return plan

    def plan(self, caller: Caller, sql: str, purpose: str, limit: int | None = None
             ) -> tuple[Plan, Template]:
        """The (cached) plan of ``sql`` for this caller and purpose, with its template."""
        found = self.lookup(caller, sql, purpose, limit)
        return self.prepare(found, caller, purpose, limit), found.template

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

    def run_found(self, found: Lookup, caller: Caller, purpose: str, limit: int | None = None
                  ) -> Result:
        """Answer a looked-up query (see :meth:`run`), building its plan if need be."""
        return self.execute(self.prepare(found, caller, purpose, limit), found.template)

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

    @fixed_aggregate_errors
    def execute(self, plan: Plan, template: Template, engine: str = "auto",
                wait: bool = True) -> Result:
        """Run a plan with the template's parameters (see :meth:`run`).

        Args:
            wait: wait for a free slot of the source; when False and none is free, raise
                ``SourceBusy`` at once.
        """
        for grant in plan.grants:
            self.grants.spend(grant)
        template = spend_lookups(self.lookups, plan, template)  # before any source is read
        # a drifted dataset never gets a plan (policy's resolve_datasets); one whose source
        # is down now is refused here, from the live state: a cached plan cannot skip it, and
        # a source that comes back is re-checked, and the plans cleared, before it is up
        attached = self.executor.attached()
        for src in plan.sources:
            st = self.sources.state(src.name)
            if st.status != "ok" or src.name not in attached:
                raise SourceUnavailable(
                    f"source `{src.name}` of member `{src.owner}` is unavailable since "
                    f"{time.strftime('%H:%M:%S', time.localtime(st.since))}; other datasets "
                    "keep working")
        run = self.executor
        choice = plan.choose() if engine == "auto" else "duckdb"
        if choice == "native" and plan.schema is None:
            plan.schema = run.describe(plan, template.params)
        if choice == "native":
            assert plan.native is not None and plan.schema is not None
            rows, seconds = run.native(plan, template, wait)
            truncated = len(rows) > plan.row_limit
            result = Result(plan.schema, truncated, plan, f"native:{plan.native.name}",
                            _rows=rows[:plan.row_limit] if truncated else rows)
        else:
            table, seconds = run.duckdb(plan, template.params)
            truncated = table.num_rows > plan.row_limit
            result = Result(table.schema, truncated, plan, "duckdb",
                            _table=table.slice(0, plan.row_limit) if truncated else table)
        if engine == "auto":
            plan.record(choice, seconds)
        return result
