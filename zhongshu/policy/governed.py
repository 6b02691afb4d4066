"""``Governed``: what the firewall hands the query layer — the only thing it takes from policy."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

from zhongshu.catalog.catalog import Dataset
from zhongshu.policy.context import Context, DatasetRef, LookupSite
from zhongshu.policy.grants import Grant
from zhongshu.policy.relations import marked_dataset
from zhongshu.policy.subjects import Subjects


@dataclass(frozen=True)
class Governed:
    """A query the rules passed and rewrote, with what it reads and under which grants.

    Attributes:
        expression: the governed query. Its only relations are raw marker tables, each
            standing for one dataset of ``datasets`` (see :meth:`raw_dataset`); its only
            placeholders are the parameters ``govern`` was told to accept.
        refs: each dataset reference of the caller's query, with the access decided for it.
        datasets: every dataset read, by name — those of ``refs`` and those reached through
            a grant's row scope.
        columns_read: dataset → the columns the query reads of it (``*`` expanded).
        row_scopes: the row scopes that limit the rows, once per dataset and grant
            (``{"dataset", "grant", "scope"}``).
        grants: the grants the query uses, once each (an owner reading its own data uses
            none) — those its row scopes read through (the grants' owners' grants) included;
            each is spent once per run.
        subjects: the identifiers of people the query may name, and how it narrows the
            datasets with identifying columns (``policy.subjects``).
        caller: the member the query is governed for (the one whose budgets it spends).
        purpose: the purpose it is governed for.
        aggregate: the expression is the hub's own query over an aggregate dataset
            (``policy.aggregate``): it runs on DuckDB, and an engine error on it is answered
            with a fixed message.
        lookups: every value looked up in a pseudonymised column (``policy.lookups``); each
            run spends the caller's lookup budget for them.
    """

    expression: exp.Expr = field(repr=False)
    refs: tuple[DatasetRef, ...]
    datasets: dict[str, Dataset]
    columns_read: dict[str, list[str]]
    row_scopes: list[dict[str, str]]
    grants: list[Grant]
    subjects: Subjects = Subjects()
    caller: str = ""
    purpose: str = ""
    aggregate: bool = False
    lookups: tuple[LookupSite, ...] = ()

    @classmethod
    def of(cls, expression: exp.Expr, ctx: Context) -> Governed:
        """What is left of ``ctx`` once every rule has passed over ``expression``."""
        datasets = {r.dataset.name: r.dataset for r in ctx.refs}
        datasets.update(ctx.scoped_through)
        columns: dict[str, set[str]] = {}
        scopes: dict[tuple[str, str], dict[str, str]] = {}
        grants: dict[str, Grant] = {}
        for r in ctx.refs:
            columns.setdefault(r.dataset.name, set()).update(r.columns | r.internal)
            a = r.access
            if a is None or a.grant is None:
                continue
            grants.setdefault(a.grant.id, a.grant)
            if a.row_scope:
                scopes[(r.dataset.name, a.grant.id)] = {"dataset": r.dataset.name,
                                                        "grant": a.grant.id,
                                                        "scope": a.row_scope}
        for g in ctx.scope_grants.values():
            grants.setdefault(g.id, g)  # its owner's grants a row scope reads through
        return cls(expression=expression, refs=tuple(ctx.refs), datasets=datasets,
                   columns_read={k: sorted(v) for k, v in columns.items()},
                   row_scopes=list(scopes.values()), grants=list(grants.values()),
                   subjects=ctx.subjects or Subjects(),
                   caller=ctx.caller.name, purpose=ctx.purpose, aggregate=ctx.aggregate,
                   lookups=tuple(ctx.lookups))

    def raw_dataset(self, node: exp.Expr) -> Dataset | None:
        """The dataset whose raw rows ``node`` stands for, if it is one of the expression's
        marker tables (copies included); None for every other node."""
        name = marked_dataset(node)
        return self.datasets.get(name) if name is not None else None
