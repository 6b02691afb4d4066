"""The query service: one exchange from SQL text to an answer, for one city.

``QueryService.run(caller, sql, purpose)`` is the path of one exchange from parsing to an
Arrow table; the protocol adds authentication, encoding and the ledger around it. The work is
shared out: ``query.health`` keeps the sources' state, ``query.cache`` the plans by shape,
``query.plan`` builds a plan from policy's governed query, ``query.execute`` runs it and owns
the DuckDB workers. This class holds the grants (reloaded when the store says they changed)
and puts the parts together.

Every exchange has one time limit (``query_timeout_s``), counted from when it arrives: the
planning of a new shape runs inside it (``query.deadline``: interrupted at the deadline,
whichever step is slow), and running gets what is left. The text itself is capped at
``MAX_SQL_CHARS`` (``413 query_too_large``).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from zhongshu.catalog.catalog import Catalog
from zhongshu.errors import (
    QueryTimeout,
    QueryTooLarge,
    SourceBusy,
    SourceUnavailable,
    TypeNotSupported,
    ZhongshuError,
)
from zhongshu.federation import CatalogSync, Peers
from zhongshu.policy.firewall import govern
from zhongshu.policy.grants import Grants
from zhongshu.policy.identity import Caller
from zhongshu.policy.lookups import LookupBudget
from zhongshu.policy.masking import PSEUDONYM_FN, PseudonymKeys
from zhongshu.policy.subjects import PERSON, SubjectKey, check_person
from zhongshu.query.cache import PlanCache
from zhongshu.query.deadline import Deadline
from zhongshu.query.execute import Executor, NativeMismatch, Result
from zhongshu.query.health import SourceHealth
from zhongshu.query.inference import fixed_aggregate_errors, spend_lookups
from zhongshu.query.plan import Plan, Template, build_plan, templatize
from zhongshu.query.remote import RemoteRunner
from zhongshu.query.types import native_safe, typed_sql
from zhongshu.query.worker import WorkerPool
from zhongshu.sources.base import NativeSQL
from zhongshu.stores import LookupCounts, RateCounters
from zhongshu.stores.memory import MemoryLookupCounts

log = logging.getLogger("zhongshu.query")
__all__ = ["MAX_SQL_CHARS", "Deadline", "Lookup", "QueryService", "Result"]

MAX_SQL_CHARS = 100_000
"""The longest SQL text accepted (characters); longer is ``413 query_too_large``."""

QUERY_THREADS = 32
"""Threads that plan and run queries for the protocol (``QueryService.pool``)."""

GRANTS_CHECK_S = 0.25
"""How often, at most, a query first asks the metadata store whether grants changed (one
``max(seq)`` read): a revocation through the CLI or another replica applies within it."""

# Tokenizing is linear, a few microseconds per short text: bounding it (a timer thread) would
# cost more than it does. Longer texts are tokenized under the deadline.
_SHORT_TEXT = 4096


@dataclass(frozen=True)
class Quick:
    """What :meth:`QueryService.quick` did: the answer, if it gave one; whether the grants'
    rate limits were spent; the query's lookup (None: not looked up)."""

    result: Result | None
    charged: bool
    found: Lookup | None


def budget_of(caller: Caller) -> str | None:
    """Whose lookup budget a scenario's request spends besides its own: the caller it acts
    for — for a person, that person alone (``~person:TAG``, no member name can take it)."""
    if caller.person is not None:
        return f"{PERSON}:{caller.person.tag[:16]}"
    return caller.on_behalf_of


def check_size(sql: str) -> None:
    """Raises ``QueryTooLarge`` for a text over ``MAX_SQL_CHARS``."""
    if len(sql) > MAX_SQL_CHARS:
        raise QueryTooLarge(f"the query is {len(sql):,} characters, over the hub's limit of "
                            f"{MAX_SQL_CHARS:,}; send a shorter query (e.g. join a dataset "
                            "instead of listing values)")


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
        workers: the DuckDB workers of the configuration serving before a reload, kept when
            they reach exactly the sources this service's would (``zhongshu.reload``).
        federation: this hub's peers and their catalogs' sync, when it is federated: plans
            over remote datasets run through them (``query.remote``).
    """

    def __init__(self, catalog: Catalog, rates: RateCounters, monitor: bool = True,
                 lookups: LookupCounts | None = None,
                 federation: tuple[Peers, CatalogSync] | None = None,
                 workers: WorkerPool | None = None) -> None:
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
        #: the ledger-subject key (``state/subject.key``): people's identifiers as tags
        self.subject_key = SubjectKey.load(self.city.state_dir / "subject.key")
        self.lookups = LookupBudget(lookups or MemoryLookupCounts(), keys.secret)
        for src in catalog.sources.values():
            if isinstance(src, NativeSQL) and src.kind == "sqlite":
                # keyed pseudonyms computed inside SQLite: pushdown holds
                src.functions[PSEUDONYM_FN] = (keys.pseudonym, 2)
        self.sources = SourceHealth(catalog)
        self.plans = PlanCache(self.settings.plan_cache_size)
        self.executor = Executor(catalog, self.settings, keys.secret, self.sources,
                                 on_rebuild=self.plans.clear, reuse=workers)
        #: runs plans over remote datasets (None: this hub has no peers)
        self.remote = RemoteRunner(catalog, *federation, self.settings, keys) \
            if federation is not None else None
        # the protocol's queries run here, never on its event loop, and never in the
        # thread pool its other endpoints share: slow queries cannot starve the catalog
        self.pool = ThreadPoolExecutor(QUERY_THREADS, thread_name_prefix="zhongshu-query")
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

    def second_wall(self) -> dict[str, Any]:
        """Whether the DuckDB workers are confined to their sources (``query.wall``): held,
        what confines them, the user they run as, and why not (no paths, hosts or names)."""
        pool = self.executor.engine
        return {"held": pool.wall is not None, "confinement": pool.wall,
                "runs_as": pool.runs_as, "problem": pool.wall_problem or None}

    def close(self) -> None:
        """Stop the monitor and close the engine and native connections."""
        self.sources.stop()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.executor.close()
        if self.remote is not None:
            self.remote.close()

    # --- grants ---------------------------------------------------------------------------

    def refresh_grants(self, force: bool = False) -> None:
        """Reload grants when the store says they changed (checked at most every
        ``GRANTS_CHECK_S``): a grant added or revoked by the CLI in another process, or
        through another replica of the hub, applies within that time."""
        now = time.monotonic()
        if not force and now - self._grants_checked < GRANTS_CHECK_S:
            return
        self._grants_checked = now
        version = self.store.version()
        if force or version != self._grants_version:
            with self._lock:
                self._grants = Grants(self.catalog, self._rates)
                self._grants_version = version
                self.plans.clear()

    # --- queries --------------------------------------------------------------------------

    def deadline(self) -> Deadline:
        """A new exchange's time limit, starting now."""
        return Deadline(self.settings.query_timeout_s)

    def lookup(self, caller: Caller, sql: str, purpose: str, limit: int | None = None,
               deadline: Deadline | None = None) -> Lookup:
        """The query's template and its cached plan, if any (cheap: no parsing; grants are
        reloaded first if they changed).

        Raises:
            QueryTooLarge: the text is over ``MAX_SQL_CHARS``.
            QueryTimeout: ``deadline`` passed while tokenizing.
        """
        check_size(sql)
        self.refresh_grants()
        if len(sql) > _SHORT_TEXT:
            template = (deadline or self.deadline()).bounded(lambda: templatize(sql))
        else:
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

    def prepare(self, found: Lookup, caller: Caller, purpose: str, limit: int | None = None,
                deadline: Deadline | None = None) -> Plan:
        """The plan of a looked-up query: the cached one, or one built and cached now.

        Building it (govern: parse and the firewall's rules; then the planner's rewriting
        and transpiling) is interrupted at ``deadline`` (default: the time limit from now).

        Raises:
            QueryTimeout: planning did not finish in time (nothing is cached).
        """
        if found.plan is not None:
            return found.plan
        grants = self.grants  # read once, outside the interruptible section

        def build() -> Plan:
            governed = govern(found.template.text, caller=caller, purpose=purpose,
                              catalog=self.catalog, grants=grants,
                              parameters=found.template.parameters)
            return build_plan(found.template, governed, self.settings.row_cap, limit)

        plan = (deadline or self.deadline()).bounded(build)
        self.plans.put(found.key, plan)
        return plan

    def plan(self, caller: Caller, sql: str, purpose: str, limit: int | None = None,
             deadline: Deadline | None = None) -> tuple[Plan, Template]:
        """The (cached) plan of ``sql`` for this caller and purpose, with its template."""
        deadline = deadline or self.deadline()
        found = self.lookup(caller, sql, purpose, limit, deadline)
        return self.prepare(found, caller, purpose, limit, deadline), found.template

    def run(self, caller: Caller, sql: str, purpose: str, limit: int | None = None,
            engine: str = "auto", deadline: Deadline | None = None,
            charge: bool = True, allow_partial: bool = False) -> Result:
        """Answer ``sql`` for ``caller`` and ``purpose``, within one time limit.

        Args:
            engine: ``auto`` (push down to the source when the plan allows) or ``duckdb``
                (always the DuckDB engine; for checks and debugging).
            deadline: when the exchange's time is up (default: the hub's limit from now);
                planning and running both count.
            charge: spend the grants' rate limits (False: :meth:`quick` spent them already
                for this exchange).
            allow_partial: over remote datasets, answer from the peers that answer and
                name the others in ``Result.partial`` (default: fail).

        Raises:
            ZhongshuError: a protocol error (refusal, bad query, source down, timeout…).
        """
        deadline = deadline or self.deadline()
        plan, template = self.plan(caller, sql, purpose, limit, deadline)
        self.for_person(caller, plan, template)
        return self.execute(plan, template, engine, deadline=deadline,
                            on_behalf_of=budget_of(caller), charge=charge,
                            allow_partial=allow_partial)

    # how long an inline answer (:meth:`quick`) may hold the calling thread at most
    INLINE_LIMIT_S = 0.05

    def quick(self, caller: Caller, sql: str, purpose: str, limit: int | None,
              deadline: Deadline) -> Quick:
        """Answer at once, on the calling thread (the protocol's event loop), a short query
        whose plan is cached and was measured sub-millisecond on a SQLite source's own engine
        (no network to wait on, no lookups to count). Otherwise its ``result`` is None: run
        ``found`` (when the query was looked up) with :meth:`run_found`, or the text with
        :meth:`run`, on a query thread, passing ``charge=not charged``.

        Handing a 50 µs lookup to a thread costs more than the lookup, and under load the
        threads convoy on the interpreter lock (measured: half the throughput). The run is
        bounded by ``INLINE_LIMIT_S``; a plan that overruns it, or finds its source's slots
        taken, is not quick any more and goes to a thread. Anything a refusal would be is
        raised as from :meth:`run`.
        """
        if len(sql) > _SHORT_TEXT or caller.person is not None:
            return Quick(None, False, None)
        found = self.lookup(caller, sql, purpose, limit, deadline)
        plan = found.plan
        if (plan is None or not plan.is_quick() or plan.governance.lookups
                or plan.native is None or plan.native.kind != "sqlite"):
            return Quick(None, False, found)
        inline = Deadline(min(deadline.remaining(), self.INLINE_LIMIT_S))
        try:
            return Quick(self.execute(plan, found.template, "native", wait=False,
                                      deadline=inline, on_behalf_of=budget_of(caller)),
                         True, found)
        except (SourceBusy, QueryTimeout):
            plan.record("native", self.INLINE_LIMIT_S)  # not quick from now on
            return Quick(None, True, found)

    def describe(self, caller: Caller, sql: str, purpose: str,
                 deadline: Deadline | None = None) -> Any:
        """The Arrow schema the answer to ``sql`` would have, without running it (the wire
        endpoint's drivers describe a prepared statement before they bind it); planned,
        and so refused, exactly as :meth:`run` would.

        Raises:
            ZhongshuError: the refusal the query itself would get.
        """
        deadline = deadline or self.deadline()
        plan, template = self.plan(caller, sql, purpose, None, deadline)
        if self.remote is not None and self.remote.reads_remote(plan):
            return self.remote.describe(plan, template, deadline)
        if plan.schema is None:
            self._type(plan, template, deadline)
        return plan.schema

    def run_found(self, found: Lookup, caller: Caller, purpose: str, limit: int | None = None,
                  deadline: Deadline | None = None, charge: bool = True,
                  allow_partial: bool = False) -> Result:
        """Answer a looked-up query (see :meth:`run`), building its plan if need be."""
        deadline = deadline or self.deadline()
        plan = self.prepare(found, caller, purpose, limit, deadline)
        self.for_person(caller, plan, found.template)
        return self.execute(plan, found.template, deadline=deadline,
                            on_behalf_of=budget_of(caller), charge=charge,
                            allow_partial=allow_partial)

    def for_person(self, caller: Caller, plan: Plan, template: Template) -> None:
        """The wall for a scenario acting for a person, checked on this run's values (a
        cached plan serves every value of its shape, so this is never cached).

        Raises:
            NotYourData: the query names another person's identifier, or does not narrow an
                identifying dataset to the person's own (``policy.subjects.check_person``).
        """
        if caller.person is not None:
            try:
                check_person(caller.person, plan.governance.subjects, template.values(),
                             self.subject_key)
            except ZhongshuError as e:
                e.datasets = tuple(plan.columns_read)
                raise

    def explain(self, caller: Caller, sql: str, purpose: str, limit: int | None = None,
                deadline: Deadline | None = None) -> dict[str, Any]:
        """What would leave for this query, without running it: the rewritten SQL, the path,
        and for every dataset the columns read and the grant, masks and row scope that apply.

        Raises:
            ZhongshuError: the same refusal the query itself would get (planning is bounded
                by the same time limit).
        """
        plan, template = self.plan(caller, sql, purpose, limit, deadline)
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
                wait: bool = True, deadline: Deadline | None = None,
                on_behalf_of: str | None = None, charge: bool = True,
                allow_partial: bool = False) -> Result:
        """Run a plan with the template's parameters (see :meth:`run`).

        The first run of a plan learns the DuckDB types of its answer (``query.types``):
        types Arrow cannot carry faithfully are cast to text in the DuckDB SQL, a type the
        hub cannot encode is refused naming the column, and a plan whose answer holds
        anything but plain scalars never runs on a source's own driver.

        Args:
            wait: wait for a free slot of the source; when False and none is free, raise
                ``SourceBusy`` at once.
            deadline: when time is up (default: the hub's limit from now).
            on_behalf_of: the scenario caller the request is made for: its lookup budget is
                spent too.
            engine: ``auto``, ``duckdb``, or ``native`` (the source's own engine, when the
                plan can run there; measured like ``auto``).
            charge: spend the grants' rate limits (False: already spent for this exchange).
            allow_partial: see :meth:`run`.

        Raises:
            TypeNotSupported: a column of the answer has a type the hub cannot encode.
            QueryTimeout: past the deadline.
            ZhongshuError: the source is down, busy or too slow, a rate limit is spent…;
                its ``datasets`` name the plan's datasets, for the refusal's ledger entry.
        """
        try:
            named = frozenset(plan.governance.subjects.identifiers(template.values()))
            template = spend_lookups(self.lookups, plan, template, on_behalf_of)
            result = self._execute(plan, template, engine, wait, deadline or self.deadline(),
                                   charge, allow_partial)
            result.identifiers = named  # from the caller's own values, before any rewriting
            return result
        except ZhongshuError as e:
            e.datasets = e.datasets or tuple(plan.columns_read)
            raise

    def _execute(self, plan: Plan, template: Template, engine: str, wait: bool,
                 deadline: Deadline, charge: bool = True, allow_partial: bool = False
                 ) -> Result:
        for grant in plan.grants if charge else ():
            self.grants.spend(grant)
        if self.remote is not None and self.remote.reads_remote(plan):
            return self.remote.run(plan, template, deadline, allow_partial)
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
        if plan.schema is None:
            self._type(plan, template, deadline)
        if engine == "native" and plan.native is not None:
            choice = "native"
        else:
            choice = plan.choose() if engine == "auto" else "duckdb"
        if choice == "native":
            assert plan.native is not None and plan.schema is not None
            try:
                rows, seconds = run.native(plan, template, wait, deadline.remaining())
            except NativeMismatch:
                # a value the source's driver cannot give as DuckDB types it (an infinite
                # date, say): DuckDB, the reference path, answers this run
                choice = "duckdb"
            else:
                truncated = len(rows) > plan.row_limit
                result = Result(plan.schema, truncated, plan, f"native:{plan.native.name}",
                                _rows=rows[:plan.row_limit] if truncated else rows)
        if choice == "duckdb":
            table, seconds = run.duckdb(plan, template.params, deadline.remaining())
            truncated = table.num_rows > plan.row_limit
            result = Result(table.schema, truncated, plan, "duckdb",
                            _table=table.slice(0, plan.row_limit) if truncated else table)
        if engine in ("auto", "native"):
            plan.record(choice, seconds)
        return result

    def _type(self, plan: Plan, template: Template, deadline: Deadline) -> None:
        """Learn the answer's types once per plan: its schema, the DuckDB SQL with casts
        where Arrow would lose information, and whether the native path may answer it.

        Raises:
            TypeNotSupported: a column the hub cannot encode (named in the message).
        """
        schema, types = self.executor.describe(plan, template.params, deadline.remaining())
        sql, casts = typed_sql(plan.duckdb_sql, types)
        if casts or not native_safe(types):
            plan.native = None
            plan.native_sql = None
        if casts:
            plan.duckdb_sql = sql
            schema, _ = self.executor.describe(plan, template.params, deadline.remaining())
        if schema is None:  # every type query.types lets through has an Arrow form
            raise TypeNotSupported("a column of the answer has a type the hub cannot encode; "
                                   "cast it to VARCHAR (`CAST(… AS VARCHAR)`)")
        plan.schema = schema
