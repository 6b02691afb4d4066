"""Remote datasets: a governed query over datasets of peer hubs (district hubs).

The query was governed here already, under the caller's grants on the remote datasets (the
grants of the peer's member here). Each remote dataset it reads is then asked of its hub —
signed, as this hub's member there, for the caller's purpose and on behalf of the caller —
for the columns the peer offers: ``SELECT "c1", "c2" FROM <dataset>``, built here from
names the catalog checked (never text from the peer). The peer governs that again under its
grant to this hub, so its masks and row scopes apply before anything leaves it; what comes
back is registered under the dataset's relation name (``catalog.remote``) in a locked-down
DuckDB engine with nothing attached, and the governed query runs over it. Rights compose as
an intersection: the peer's grant bounds what this hub receives, the caller's grant here
bounds what the caller sees of that.

**Pushdown.** When the caller's access here is columns alone and the query reads one
remote dataset (:func:`pushable`), the governed query itself is sent instead — this hub's
governed view over the dataset's name, values inline, the row limit — so the peer runs the
filters and aggregates and answers only the rows asked for (a per-district aggregate, not a
row scan). Its answer must have exactly the columns the plan's answer has.

Peers are asked in parallel. A peer that fails makes the query fail (``peer_unavailable``
naming it, or its refusal forwarded naming it) unless the request allows a partial answer:
then its datasets read as empty and the answer's ``partial`` says which peer, and why. A
peer's answer cut at its row cap is never used silently: the query fails with
``result_too_large`` naming the dataset (filter or aggregate, or raise that hub's cap).

**Union datasets** (``catalog.remote.UnionSource``) fetch each part from its hub in
parallel, the caller's filters pushed to each part with the union's peer column replaced by
the part's value; a decomposable aggregate over a union is rolled up instead
(``query.rollup``): each hub sends its partial aggregate, merged here.

In this first version a query reads remote datasets only (no join with local ones). The
answers are combined on a DuckDB engine in the hub's process with nothing attached,
external access off and its configuration locked (not in the confined workers yet).
"""

from __future__ import annotations

import logging
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from sqlglot import exp

from zhongshu.catalog.catalog import Catalog, Dataset
from zhongshu.catalog.remote import RemoteSource, UnionSource
from zhongshu.config import Column, HubSettings
from zhongshu.errors import (
    Forbidden,
    PeerUnavailable,
    QueryInvalid,
    QueryTimeout,
    ResultTooLarge,
    ZhongshuError,
)
from zhongshu.federation import CatalogSync, PeerAnswer, Peers
from zhongshu.policy.masking import PseudonymKeys
from zhongshu.query.deadline import Deadline
from zhongshu.query.engine import Engine
from zhongshu.query.execute import Result
from zhongshu.query.plan import Plan, Template
from zhongshu.query.rollup import PARTIALS, Rollup, decompose

log = logging.getLogger("zhongshu.query")
FAN_OUT = 16


def pushable(plan: Plan) -> Dataset | None:
    """The one remote dataset a plan may be sent to whole, or None.

    A plan is sent whole to its dataset's hub when it reads that one remote dataset only and
    the caller's access to it here is columns alone (no masks: a keyed pseudonym exists only
    here; no row scope: this hub's rule is kept here, not delegated) and it is no aggregate
    dataset. The peer then runs the filters, projections and aggregates itself — it governs
    the query again under its grant to this hub — and answers only what the caller asked.
    """
    datasets = list(plan.datasets.values())
    if len(datasets) != 1 or type(datasets[0].source) is not RemoteSource or \
            plan.governance.aggregate or plan.governance.lookups:
        return None
    for ref in plan.refs:
        if ref.access is not None and (ref.access.masking or ref.access.row_scope):
            return None
    return datasets[0]


def pushdown_sql(plan: Plan, template: Template, dataset: Dataset) -> str:
    """The governed query as the dataset's hub receives it: this hub's governed view over
    the dataset's name (no raw marker: the peer governs its own), the caller's values
    inline, and the plan's row limit (one more, to tell a cut answer).

    Only names the catalog checked and SQL this hub's firewall produced go into it.
    """
    governed = plan.governance
    values = template.values()
    alias = "zs_r"
    marker: str | None = None

    def swap(node: exp.Expr) -> exp.Expr:
        nonlocal marker
        if isinstance(node, exp.Placeholder):
            value = values[node.name]
            return _literal(value)
        if governed.raw_dataset(node) is not None:
            assert isinstance(node, exp.Table)
            marker = node.alias_or_name
            ns, _, table = dataset.name.partition(".")
            return exp.table_(table, db=ns, alias=alias)
        return node

    e = governed.expression.copy().transform(swap)
    if marker is not None:
        for col in e.find_all(exp.Column):
            if col.table == marker:
                col.set("table", exp.to_identifier(alias))
    wrapped = exp.select("*").from_(exp.Subquery(this=e, alias=exp.TableAlias(
        this=exp.to_identifier("zs_q")))).limit(plan.fetch_limit)
    return wrapped.sql("duckdb")


def pushed_filter(plan: Plan, template: Template, dataset: Dataset) -> exp.Expr | None:
    """The part of the caller's WHERE that the dataset's hub may apply itself, or None.

    Only when the caller's access here has no masks (a filter on a masked column must see
    the masked value, so it is applied here, after the mask) and the dataset is read once;
    then each conjunct of the WHERE right over its governed view that reads only the
    dataset's own columns — no subquery, no other relation — with the caller's values
    inline. Every conjunct is applied here again all the same: pushing one only saves rows.
    For a union, its peer column stays in (``union_part_filter`` replaces it per part).
    """
    governed = plan.governance
    if governed.aggregate or governed.lookups:
        return None
    for ref in plan.refs:
        if ref.dataset is dataset and ref.access is not None and ref.access.masking:
            return None
    markers = [t for t in governed.expression.find_all(exp.Table)
               if governed.raw_dataset(t) is dataset]
    if len(markers) != 1:
        return None
    view = markers[0].find_ancestor(exp.Subquery)
    outer = view.parent if view is not None else None
    while outer is not None and not isinstance(outer, exp.Select):
        outer = outer.parent
    if view is None or not isinstance(outer, exp.Select) or outer.args.get("joins") or \
            outer.args.get("from_") is None or outer.args["from_"].this is not view:
        return None
    where = outer.args.get("where")
    if where is None:
        return None
    alias = view.alias_or_name
    names = {c.name for c in dataset.columns}
    values = template.values()
    kept = []
    for conj in where.this.flatten() if isinstance(where.this, exp.And) else [where.this]:
        if any(isinstance(n, (exp.Query, exp.Subquery, exp.Table, exp.Window, exp.AggFunc))
               for n in conj.walk()):
            continue
        cols = list(conj.find_all(exp.Column))
        if not cols or any(c.table not in ("", alias) or c.name.lower() not in names
                           for c in cols):
            continue
        c = conj.copy()
        for col in list(c.find_all(exp.Column)):
            col.replace(exp.column(col.name.lower(), quoted=True))
        kept.append(c.transform(lambda n: _literal(values[n.name])
                                if isinstance(n, exp.Placeholder) else n))
    return exp.and_(*kept) if kept else None


def union_part_filter(condition: exp.Expr, label: str, value: str) -> exp.Expr:
    """A union's pushed filter for one part: its peer column replaced by the part's value
    (so ``district = 'xihu'`` is false at every other district's hub)."""
    return condition.copy().transform(
        lambda n: exp.Literal.string(value) if isinstance(n, exp.Column) and
        n.name == label else n)


def _literal(value: Any) -> exp.Expr:
    if isinstance(value, Decimal):
        return exp.Literal.number(str(value))
    return exp.convert(value)


def fetch_sql(dataset: Dataset, columns: list[Column] | None = None,
              where: exp.Expr | None = None) -> tuple[str, list[str]]:
    """The query sent to the dataset's hub for ``columns`` (default: all it offers), and
    the columns its answer must have.

    >>> from zhongshu.config import Column, DatasetConfig
    >>> dc = DatasetConfig(name="xihu_grid.events", source="hub-xihu", table="xihu_grid.events",
    ...                    columns=[Column(name="event_id", type="BIGINT"),
    ...                             Column(name="street", type="VARCHAR")])
    >>> fetch_sql(Dataset(dc.name, "hub-xihu", dc, RemoteSource("hub-xihu")))[0]
    'SELECT "event_id", "street" FROM xihu_grid.events'
    """
    names = [c.name for c in (dataset.columns if columns is None else columns)]
    ns, _, table = dataset.name.partition(".")
    select = exp.select(*[exp.column(n, quoted=True) for n in names]).from_(
        exp.table_(table, db=ns))
    if where is not None:
        select = select.where(where)
    return select.sql("duckdb"), names


class RemoteRunner:
    """Runs plans over remote datasets (see the module docstring)."""

    def __init__(self, catalog: Catalog, peers: Peers, sync: CatalogSync,
                 settings: HubSettings, keys: PseudonymKeys) -> None:
        self.catalog = catalog
        self.peers = peers
        self.sync = sync
        self._tmp = Path(tempfile.mkdtemp(prefix="zhongshu-remote-"))
        self.engine = Engine([], settings, self._tmp, 0, keys)
        self.pool = ThreadPoolExecutor(FAN_OUT, thread_name_prefix="zhongshu-peer")

    def close(self) -> None:
        """Close the engine and the fan-out threads."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.engine.close()

    def reads_remote(self, plan: Plan) -> bool:
        """Whether the plan reads a remote dataset."""
        return any(isinstance(d.source, RemoteSource) for d in plan.datasets.values())

    def run(self, plan: Plan, template: Template, deadline: Deadline,
            allow_partial: bool = False) -> Result:
        """Answer the plan from its peers' answers.

        Raises:
            QueryInvalid: it also reads local datasets.
            PeerUnavailable: a peer failed (and a partial answer was not allowed).
            ResultTooLarge: a peer's answer was cut at its row cap.
            ZhongshuError: a peer's refusal, forwarded naming it.
        """
        remote = [d for d in plan.datasets.values() if isinstance(d.source, RemoteSource)]
        local = sorted(d.name for d in plan.datasets.values() if d not in remote)
        if local:
            raise QueryInvalid("a query over remote datasets reads remote datasets only in "
                               f"this version; `{local[0]}` is a local dataset (query them "
                               "separately)")
        caller, purpose = plan.governance.caller, plan.governance.purpose
        whole = pushable(plan)
        if whole is not None:
            return self._pushed(plan, template, whole, deadline)
        rolled = self._rolled_up(plan, template, deadline, allow_partial)
        if rolled is not None:
            return rolled
        jobs = [job for d in remote for job in self._jobs(d, plan, template)]
        futures = {name: self.pool.submit(self._fetch, name, cols, where, caller, purpose,
                                          deadline)
                   for name, cols, where in jobs}
        tables: dict[str, pa.Table] = {}
        upstream: list[dict[str, Any]] = []
        partial: list[dict[str, str]] = []
        for name, cols, _ in jobs:
            try:
                answer = futures[name].result(timeout=max(deadline.remaining(), 0) + 1)
            except TimeoutError:
                raise deadline.timeout() from None
            except ZhongshuError as e:
                hub = e.hub or self._peer_of(name)
                if not allow_partial or isinstance(e, (QueryTimeout, ResultTooLarge)):
                    raise
                if not any(p["hub"] == hub for p in partial):
                    partial.append({"hub": hub, "code": e.code, "message": e.message})
                tables[name] = self._empty(cols)
                continue
            upstream.append({**answer.receipt, "dataset": name})
            tables[name] = answer.table
        table = self._execute(plan, template, tables, deadline)
        truncated = table.num_rows > plan.row_limit
        if truncated:
            table = table.slice(0, plan.row_limit)
        if plan.schema is None:
            plan.schema = table.schema
        result = Result(table.schema, truncated, plan, "remote", _table=table)
        result.upstream = upstream
        result.partial = partial
        return result

    def describe(self, plan: Plan, template: Template, deadline: Deadline) -> pa.Schema:
        """The answer's schema, learnt once per plan by running it over no rows."""
        if plan.schema is None:
            empty: dict[str, pa.Table] = {}
            for d in plan.datasets.values():
                if isinstance(d.source, UnionSource):
                    empty.update({part: self._empty(list(d.columns[1:]))
                                  for part in d.source.parts})
                elif isinstance(d.source, RemoteSource):
                    empty[d.name] = self._empty(list(d.columns))
            plan.schema = self._execute(plan, template, empty, deadline).schema
        return plan.schema

    def _pushed(self, plan: Plan, template: Template, d: Dataset, deadline: Deadline
                ) -> Result:
        """The plan answered whole by the dataset's hub (:func:`pushable`)."""
        schema = self.describe(plan, template, deadline)
        self._offered(d)
        peer = d.source.name
        answer = self.peers[peer].query(pushdown_sql(plan, template, d),
                                        plan.governance.purpose, plan.governance.caller,
                                        list(schema.names),
                                        max(deadline.remaining(), 0.05))
        table = answer.table
        truncated = answer.truncated or table.num_rows > plan.row_limit
        if table.num_rows > plan.row_limit:
            table = table.slice(0, plan.row_limit)
        result = Result(table.schema, truncated, plan, "remote", _table=table)
        result.upstream = [{**answer.receipt, "dataset": d.name}]
        return result

    def _rolled_up(self, plan: Plan, template: Template, deadline: Deadline,
                   allow_partial: bool) -> Result | None:
        """The plan answered from each district's partial aggregates (``query.rollup``),
        or None when it is no roll-up over one union dataset with columns-only access."""
        datasets = list(plan.datasets.values())
        if len(datasets) != 1 or not isinstance(datasets[0].source, UnionSource) or \
                plan.governance.aggregate or plan.governance.lookups or any(
                    r.access is not None and (r.access.masking or r.access.row_scope)
                    for r in plan.refs):
            return None
        union = datasets[0]
        assert isinstance(union.source, UnionSource)
        schema = self.describe(plan, template, deadline)
        rollup = decompose(plan.governance.expression, list(schema.names))
        if rollup is None:
            return None
        governed, values = plan.governance, template.values()
        label = union.columns[0].name
        jobs = {}
        for part, ns in union.source.parts.items():
            jobs[part] = self.pool.submit(self._partial, rollup, part, ns, label, values,
                                          governed, deadline)
        answers: dict[str, PeerAnswer] = {}
        partial: list[dict[str, str]] = []
        for part, future in jobs.items():
            try:
                answers[part] = future.result(timeout=max(deadline.remaining(), 0) + 1)
            except TimeoutError:
                raise deadline.timeout() from None
            except ZhongshuError as e:
                if not allow_partial or isinstance(e, (QueryTimeout, ResultTooLarge)):
                    raise
                partial.append({"hub": e.hub or self._peer_of(part), "code": e.code,
                                "message": e.message})
        if not answers:
            return None  # nothing to merge: the rows path says what is missing
        cur = self.engine.con.cursor()
        try:
            names = []
            for i, answer in enumerate(answers.values()):
                cur.register(f"zs_p{i}", answer.table)
                names.append(f'SELECT * FROM "zs_p{i}"')
            final = rollup.final.transform(lambda n: _literal(values[n.name])
                                           if isinstance(n, exp.Placeholder) else n)
            sql = (f"WITH {PARTIALS} AS ({' UNION ALL BY NAME '.join(names)}) "
                   + final.sql("duckdb"))
            table = cur.execute(sql).to_arrow_table().cast(schema)
        except (duckdb.Error, pa.ArrowInvalid, ValueError) as e:
            log.info("roll-up over %s did not merge: %s", union.name, type(e).__name__)
            raise QueryInvalid("the districts' partial answers do not merge (a type they "
                               "do not share)") from None
        finally:
            cur.close()
        truncated = table.num_rows > plan.row_limit
        if truncated:
            table = table.slice(0, plan.row_limit)
        result = Result(table.schema, truncated, plan, "remote", _table=table)
        result.upstream = [{**a.receipt, "dataset": part} for part, a in answers.items()]
        result.partial = partial
        return result

    def _partial(self, rollup: Rollup, part: str, ns: str, label: str,
                 values: dict[str, Any], governed: Any, deadline: Deadline) -> PeerAnswer:
        """One district's partial aggregate of its part of the union."""
        d = self.catalog.datasets.get(part)
        if d is None or type(d.source) is not RemoteSource:
            peer = self._peer_of(part)
            raise PeerUnavailable(f"peer hub `{peer}` is unavailable: it offers no `{part}` "
                                  "(yet)", hub=peer)
        self._offered(d)
        ns_, _, table = part.partition(".")
        marker: list[str] = []

        def swap(node: exp.Expr) -> exp.Expr:
            if isinstance(node, exp.Placeholder):
                return _literal(values[node.name])
            if governed.raw_dataset(node) is not None:
                assert isinstance(node, exp.Table)
                marker.append(node.alias_or_name)
                return exp.table_(table, db=ns_, alias="zs_r")
            return node

        q = rollup.partial.copy().transform(swap)
        for col in list(q.find_all(exp.Column)):
            if marker and col.table == marker[0]:
                if col.name == label:
                    lit = exp.Literal.string(ns)
                    col.replace(exp.alias_(lit, label, quoted=True)
                                if isinstance(col.parent, exp.Select) else lit)
                else:
                    col.set("table", exp.to_identifier("zs_r"))
        names = [e.alias_or_name for e in rollup.partial.expressions]
        answer = self.peers[d.source.name].query(q.sql("duckdb"), governed.purpose,
                                                 governed.caller, names,
                                                 max(deadline.remaining(), 0.05))
        if answer.truncated:
            raise ResultTooLarge(f"`{part}` at peer hub `{d.source.name}` has more groups "
                                 "than that hub answers at once (its row cap)")
        return answer

    def _offered(self, d: Dataset) -> None:
        """Raises unless the peer's catalog in force is fresh and still offers ``d``."""
        peer_name = d.source.name
        offer = self.sync.check_fresh(peer_name)
        if not any(o.config.name == d.name for o in offer.datasets):
            refused = Forbidden(f"peer hub `{peer_name}` no longer grants `{d.name}` to this "
                                "hub; its owners there decide")
            refused.hub = peer_name
            raise refused

    def _jobs(self, d: Dataset, plan: Plan, template: Template
              ) -> list[tuple[str, list[Column], exp.Expr | None]]:
        """The remote datasets to fetch for ``d``, their columns and the filter their hub
        may apply (:func:`pushed_filter`): ``d`` itself, or each part of a union (its
        columns but the peer column)."""
        where = pushed_filter(plan, template, d)
        if not isinstance(d.source, UnionSource):
            return [(d.name, list(d.columns), where)]
        label = d.columns[0].name
        cols = [c for c in d.columns if c.name != label]
        return [(part, cols, None if where is None else union_part_filter(where, label, ns))
                for part, ns in d.source.parts.items()]

    def _peer_of(self, dataset: str) -> str:
        holder = self.peers.settings.owner_of(dataset)
        return holder.name if holder is not None else ""

    def _fetch(self, name: str, columns: list[Column], where: exp.Expr | None, caller: str,
               purpose: str, deadline: Deadline) -> PeerAnswer:
        d = self.catalog.datasets.get(name)
        if d is None or not isinstance(d.source, RemoteSource) or \
                isinstance(d.source, UnionSource):
            peer = self._peer_of(name)
            raise PeerUnavailable(f"peer hub `{peer}` is unavailable: it offers no `{name}` "
                                  "(yet)", hub=peer)
        peer_name = d.source.name
        self._offered(d)
        sql, names = fetch_sql(d, columns, where)
        answer = self.peers[peer_name].query(sql, purpose, caller, names,
                                             max(deadline.remaining(), 0.05))
        if answer.truncated:
            raise ResultTooLarge(f"`{d.name}` at peer hub `{peer_name}` has more rows than "
                                 "that hub answers at once (its row cap); this version fetches "
                                 "a remote dataset whole: ask that hub's operators to raise its "
                                 "row cap, or query a smaller dataset")
        return answer

    def _empty(self, columns: list[Column]) -> pa.Table:
        """An empty table of ``columns`` (a missing peer's, when a partial answer is
        allowed)."""
        cols = ", ".join(
            exp.alias_(exp.cast(exp.null(), exp.DataType.build(c.type, dialect="duckdb")),
                       c.name, quoted=True).sql("duckdb") for c in columns)
        cur = self.engine.con.cursor()
        try:
            return cur.execute(f"SELECT {cols} LIMIT 0").to_arrow_table()
        finally:
            cur.close()

    def _execute(self, plan: Plan, template: Template, tables: dict[str, pa.Table],
                 deadline: Deadline) -> pa.Table:
        cur = self.engine.con.cursor()
        timer = threading.Timer(max(deadline.remaining(), 0.01), cur.interrupt)
        timer.start()
        try:
            for name, table in tables.items():
                cur.register(RemoteSource.table_name(name), table)
            return cur.execute(plan.duckdb_sql, list(template.params)).to_arrow_table()
        except duckdb.InterruptException:
            raise deadline.timeout() from None
        except duckdb.Error as e:
            # the engine's text may quote values of the peers' answers: it stays in the log
            log.info("query over remote datasets failed: %s", type(e).__name__)
            raise QueryInvalid("the query cannot run over the peers' answers (a type or "
                               "function the answers do not fit); check the columns' types "
                               "in GET /v1/datasets/NAME") from None
        finally:
            timer.cancel()
            cur.close()
