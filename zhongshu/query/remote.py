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

Peers are asked in parallel. A peer that fails makes the query fail (``peer_unavailable``
naming it, or its refusal forwarded naming it) unless the request allows a partial answer:
then its datasets read as empty and the answer's ``partial`` says which peer, and why. A
peer's answer cut at its row cap is never used silently: the query fails with
``result_too_large`` naming the dataset (filter or aggregate, or raise that hub's cap).

In this first version a query reads remote datasets only (no join with local ones).
"""

from __future__ import annotations

import logging
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from sqlglot import exp

from zhongshu.catalog.catalog import Catalog, Dataset
from zhongshu.catalog.remote import RemoteSource
from zhongshu.config import HubSettings
from zhongshu.errors import (
    Forbidden,
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

log = logging.getLogger("zhongshu.query")
FAN_OUT = 16


def fetch_sql(dataset: Dataset) -> tuple[str, list[str]]:
    """The query sent to the dataset's hub, and the columns its answer must have.

    >>> from zhongshu.config import Column, DatasetConfig
    >>> dc = DatasetConfig(name="xihu_grid.events", source="hub-xihu", table="xihu_grid.events",
    ...                    columns=[Column(name="event_id", type="BIGINT"),
    ...                             Column(name="street", type="VARCHAR")])
    >>> fetch_sql(Dataset(dc.name, "hub-xihu", dc, RemoteSource("hub-xihu")))[0]
    'SELECT "event_id", "street" FROM xihu_grid.events'
    """
    names = [c.name for c in dataset.columns]
    ns, _, table = dataset.name.partition(".")
    select = exp.select(*[exp.column(n, quoted=True) for n in names]).from_(
        exp.table_(table, db=ns))
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
        self._lock = threading.Lock()

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
        futures = {d.name: self.pool.submit(self._fetch, d, caller, purpose, deadline)
                   for d in remote}
        tables: dict[str, pa.Table] = {}
        upstream: list[dict[str, Any]] = []
        partial: list[dict[str, str]] = []
        for d in remote:
            try:
                answer = futures[d.name].result(timeout=max(deadline.remaining(), 0) + 1)
            except TimeoutError:
                raise deadline.timeout() from None
            except ZhongshuError as e:
                hub = e.hub or d.source.name
                if not allow_partial or isinstance(e, (QueryTimeout, ResultTooLarge)):
                    raise
                if not any(p["hub"] == hub for p in partial):
                    partial.append({"hub": hub, "code": e.code, "message": e.message})
                tables[d.name] = self._empty(d)
                continue
            upstream.append({**answer.receipt, "dataset": d.name})
            tables[d.name] = answer.table
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

    def _fetch(self, d: Dataset, caller: str, purpose: str, deadline: Deadline) -> PeerAnswer:
        peer_name = d.source.name
        offer = self.sync.check_fresh(peer_name)
        if not any(o.config.name == d.name for o in offer.datasets):
            refused = Forbidden(f"peer hub `{peer_name}` no longer grants `{d.name}` to this "
                                "hub; its owners there decide")
            refused.hub = peer_name
            raise refused
        sql, columns = fetch_sql(d)
        answer = self.peers[peer_name].query(sql, purpose, caller, columns,
                                             max(deadline.remaining(), 0.05))
        if answer.truncated:
            raise ResultTooLarge(f"`{d.name}` at peer hub `{peer_name}` has more rows than "
                                 "that hub answers at once (its row cap); this version fetches "
                                 "a remote dataset whole: ask that hub's operators to raise its "
                                 "row cap, or query a smaller dataset")
        return answer

    def _empty(self, d: Dataset) -> pa.Table:
        """An empty table of the dataset's declared columns (a missing peer's, when a
        partial answer is allowed)."""
        cols = ", ".join(
            exp.alias_(exp.cast(exp.null(), exp.DataType.build(c.type, dialect="duckdb")),
                       c.name, quoted=True).sql("duckdb") for c in d.columns)
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
