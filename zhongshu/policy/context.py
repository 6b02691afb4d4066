"""What the firewall's rules share while they run: who asks, for what, and what they found.

A ``Context`` lives for one run of the rules; ``Governed`` (``governed.py``) is what is left
of it once they have all passed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlglot import exp

from zhongshu.catalog.catalog import Catalog, Dataset
from zhongshu.policy.grants import Access, Grant, Grants
from zhongshu.policy.identity import Caller

if TYPE_CHECKING:
    from zhongshu.policy.subjects import Subjects

REF = "zhongshu_ref"  # meta key of a table node: the index of its DatasetRef in ``Context.refs``


@dataclass(frozen=True)
class LookupSite:
    """One place where a caller's value is looked up in a pseudonymised column: the value
    (a literal of the query, or the name of the parameter the query layer lifted it into),
    how it is normalised, the grant whose lookup budget it spends, and whose budget that is
    (the query's caller; for a lookup inside a grant's row scope, the scope's owner)."""

    grant: Grant
    normalise: str
    caller: str
    parameter: str | None = None  # placeholder name; None: ``value`` is the literal
    value: str | None = None


@dataclass
class DatasetRef:
    """One reference to a dataset in the query (a dataset may be referenced several times)."""

    dataset: Dataset
    alias: str
    columns: set[str] = field(default_factory=set)
    access: Access | None = None  # set by ``authorize_columns``
    internal: set[str] = field(default_factory=set)  # read by the hub itself, never returned


@dataclass
class Context:
    """The rules' shared state for one query.

    ``parameters`` names the placeholders the query may hold: those the query layer lifted
    out of the caller's text itself (a caller's own parameters are refused).
    """

    caller: Caller
    purpose: str
    catalog: Catalog
    grants: Grants
    parameters: frozenset[str] = frozenset()
    refs: list[DatasetRef] = field(default_factory=list)
    ctes: set[str] = field(default_factory=set)
    scoped_through: dict[str, Dataset] = field(default_factory=dict)
    scope_grants: dict[str, Grant] = field(default_factory=dict)  # read through by row scopes
    subjects: Subjects | None = None  # set by ``subject_lookups``
    aggregate: bool = False  # the query is the hub's own over an aggregate dataset
    lookups: list[LookupSite] = field(default_factory=list)  # set by ``pseudonym_lookups``

    def ref_of(self, table: exp.Expr) -> DatasetRef | None:
        """The dataset reference ``table`` was resolved to, or None (a CTE, a raw relation,
        any other node)."""
        index = table.meta.get(REF) if isinstance(table, exp.Table) else None
        return self.refs[index] if isinstance(index, int) else None

    def resolve(self, col: exp.Column) -> DatasetRef | None:
        """The dataset reference a column reads directly from, if unambiguous in its scope."""
        select = col.find_ancestor(exp.Select)
        if select is None:
            return None
        candidates: list[DatasetRef] = []
        for table in select.find_all(exp.Table):
            ref = self.ref_of(table)
            if ref is None or table.find_ancestor(exp.Select) is not select:
                continue
            if col.table and col.table.lower() != ref.alias:
                continue
            if ref.dataset.column(col.name):
                candidates.append(ref)
        return candidates[0] if len(candidates) == 1 else None


Rule = Callable[[exp.Expr, Context], exp.Expr]
"""A firewall rule: returns the (possibly rewritten) expression, or raises a protocol error."""
