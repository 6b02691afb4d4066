"""A grant's row scope, governed as its owner's query.

A row scope is SQL its owner wrote, applied inside the consumer's governed view over the raw
rows of the dataset it limits. It is never trusted: it is the ``WHERE`` of the query
``SELECT 1 FROM <dataset> AS <name> WHERE <row scope>``, and that query goes through the
firewall (``firewall.govern``: every rule) **as the grant's owner, for the consumer's
purpose**. So a row scope calls allow-listed functions only, and reads what its owner may
read: its owner's own datasets in full; another owner's only through a grant its owner holds
for that purpose, masked and row-scoped as granted to its owner — never raw.

The predicate that lands in the consumer's view is the governed query's ``WHERE``: the
dataset's own columns unqualified (they bind to the raw rows the view reads, innermost first,
so no name of the consumer's query can capture them), and every dataset its subqueries read
replaced by that governed view. Its subqueries may not refer to the row being scoped
(``EXISTS (SELECT … WHERE x = outer.col)``): write ``col IN (SELECT …)`` instead.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, traverse_scope

from zhongshu.catalog.catalog import Catalog, Dataset
from zhongshu.errors import (
    BadQuery,
    DatasetUnavailable,
    FunctionNotAllowed,
    QueryInvalid,
    SqlSyntax,
    StatementNotAllowed,
    ZhongshuError,
)
from zhongshu.policy.context import Context, DatasetRef
from zhongshu.policy.identity import Caller
from zhongshu.policy.rules.allowed_functions import allowed_functions
from zhongshu.policy.rules.bounded_nesting import bounded_nesting
from zhongshu.policy.rules.no_forbidden_nodes import FORBIDDEN, no_forbidden_nodes

if TYPE_CHECKING:
    from zhongshu.policy.governed import Governed
    from zhongshu.policy.grants import Grant, Grants

log = logging.getLogger("zhongshu.policy")

MAX_DEPTH = 4
"""Row scopes read through grants whose row scopes read through grants…: at most this deep."""
# the grants whose row scopes are being governed on this thread, outermost first
_EXPANDING: ContextVar[tuple[str, ...]] = ContextVar("zhongshu_row_scopes", default=())


def parse_predicate(text: str) -> exp.Expr:
    """A row scope's text as one predicate (an expression, not a statement).

    >>> parse_predicate("district = 'xihu'").sql()
    "district = 'xihu'"

    Raises:
        SqlSyntax: it does not parse, or is empty.
        StatementNotAllowed: it is a statement or a whole query, or several.
    """
    try:
        found = [e for e in sqlglot.parse(text, read="duckdb") if e is not None]
    except (sqlglot.ParseError, sqlglot.errors.TokenError):
        raise SqlSyntax("the row scope is not a valid SQL predicate") from None
    except RecursionError:
        raise SqlSyntax("the row scope is nested too deeply") from None
    if len(found) != 1:
        raise StatementNotAllowed("a row scope is one SQL predicate, e.g. `district = 'xihu'`")
    e = found[0]
    if isinstance(e, (exp.Query, exp.Command, *FORBIDDEN)):
        raise StatementNotAllowed("a row scope is one SQL predicate, not a statement; read "
                                  "another dataset in a subquery: `col IN (SELECT …)`")
    return e


def scope_query(dataset: Dataset, predicate: exp.Expr) -> exp.Select:
    """The query a row scope is governed as: ``SELECT 1 FROM <dataset> AS <name> WHERE …``.

    >>> from types import SimpleNamespace
    >>> scope_query(SimpleNamespace(name="traffic.passages"), parse_predicate("x = 1")).sql()
    'SELECT 1 FROM traffic.passages AS passages WHERE x = 1'
    """
    ns, name = dataset.name.split(".")
    table = exp.Table(this=exp.to_identifier(name), db=exp.to_identifier(ns),
                      alias=exp.TableAlias(this=exp.to_identifier(name)))
    return exp.select("1").from_(table).where(predicate)


def check_structure(text: str, owner: Caller, dataset: Dataset, catalog: Catalog,
                    grants: Grants) -> exp.Select:
    """The firewall's rules that depend on the text alone (one predicate; no statement,
    recursion or parameter; allow-listed functions; no table function; bounded nesting),
    over the row scope's query. What they refuse, the owner's file alone decides.

    Returns the row scope's query.

    Raises:
        BadQuery: ``sql_syntax``, ``statement_not_allowed``, ``function_not_allowed``.
    """
    q = scope_query(dataset, parse_predicate(text))
    ctx = Context(caller=owner, purpose="", catalog=catalog, grants=grants)
    for rule in (bounded_nesting, no_forbidden_nodes, allowed_functions):
        rule(q, ctx)
    for table in q.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            raise FunctionNotAllowed("table functions are not allowed in a row scope; name a "
                                     "dataset (`namespace.name`)")
    return q


def govern_scope(text: str, *, owner: Caller, dataset: Dataset, purpose: str,
                 catalog: Catalog, grants: Grants) -> tuple[exp.Expr, Governed]:
    """Govern a row scope on ``dataset`` as ``owner``'s query for ``purpose``.

    Returns:
        The predicate to put in a governed view over ``dataset``'s raw rows (the dataset's
        columns unqualified, every dataset it reads replaced by its governed view for the
        owner), and the owner's governed query (the datasets and grants it reads through).

    Raises:
        ZhongshuError: the firewall's refusal for the owner (``forbidden``,
            ``dataset_not_found``, ``column_not_granted``, ``function_not_allowed``…), or
            ``query_invalid`` for a subquery that refers to the row being scoped, or for row
            scopes that read through each other in a cycle or deeper than ``MAX_DEPTH``.
    """
    from zhongshu.policy.firewall import govern  # the firewall's rules include this module's

    q = check_structure(text, owner, dataset, catalog, grants)
    governed = govern(q.sql("duckdb"), caller=owner, purpose=purpose, catalog=catalog,
                      grants=grants)
    _uncorrelated(q, governed)
    top = governed.expression
    where = top.args.get("where") if isinstance(top, exp.Select) else None
    assert where is not None, "the firewall keeps the scope's WHERE"
    predicate = where.this.copy()
    for col in list(predicate.find_all(exp.Column)):
        if col.find_ancestor(exp.Select) is None:
            # the scoped dataset's own column: it binds to the raw rows of the view
            col.set("table", None)
            col.set("db", None)
            col.set("catalog", None)
    return predicate, governed


def _uncorrelated(q: exp.Select, governed: Governed) -> None:
    """Refuse a subquery of the row scope that refers to the row being scoped: in the
    consumer's query that row has no name the scope could use safely."""
    schema: dict[str, object] = {}
    for ds in governed.datasets.values():
        ns, name = ds.name.split(".")
        tables = schema.setdefault(ns, {})
        assert isinstance(tables, dict)
        tables[name] = {c.name: c.type for c in ds.columns}
    try:
        qualified = qualify(q.copy(), schema=schema, dialect="duckdb", expand_stars=False,
                            validate_qualify_columns=True, quote_identifiers=False,
                            identify=False)
    except OptimizeError:
        raise QueryInvalid("the row scope's columns cannot be resolved; name the dataset's "
                           "own columns, and qualify a subquery's with its alias") from None
    scopes = traverse_scope(qualified)
    root = next(s for s in scopes if s.expression is qualified)
    for scope in scopes:
        if scope is root:
            continue
        for col in scope.external_columns:
            if _binds_at(scope, col.table) is root:
                raise QueryInvalid("a subquery of a row scope may not refer to the row being "
                                   f"scoped (`{col.sql()}`); write `column IN (SELECT …)`")


def _binds_at(scope: Scope, alias: str) -> Scope | None:
    """The scope (``scope`` or an enclosing one) where the table alias ``alias`` is bound."""
    s: Scope | None = scope.parent
    while s is not None and alias not in s.sources:
        s = s.parent
    return s


def row_scope(ref: DatasetRef, ctx: Context) -> exp.Expr:
    """The row scope of the grant ``ref`` is read under, as a predicate over the dataset's
    raw rows (see the module's docstring); datasets it reads are recorded in
    ``ctx.scoped_through``, the grants it reads through in ``ctx.scope_grants``, the values
    it looks up in pseudonyms in ``ctx.lookups`` (spending its owner's budget: a row scope
    is no way around one).

    Raises:
        DatasetUnavailable: the row scope does not pass as its owner's query now (its owner
            lost a grant it reads through, or the scope was never valid): the dataset is not
            served through that grant, and the refusal says nothing of what the scope reads.
    """
    a = ref.access
    assert a is not None and a.grant is not None and a.row_scope, "a grant's row scope"
    grant: Grant = a.grant
    expanding = _EXPANDING.get()
    token = _EXPANDING.set((*expanding, grant.id))
    try:
        if grant.id in expanding or len(expanding) >= MAX_DEPTH:
            raise QueryInvalid("row scopes read through each other in a cycle, or more than "
                               f"{MAX_DEPTH} deep")
        member = ctx.catalog.members.get(grant.owner)
        if member is None:
            raise QueryInvalid(f"the owner `{grant.owner}` of the grant is no member")
        predicate, governed = govern_scope(a.row_scope, owner=Caller(member),
                                           dataset=ref.dataset, purpose=ctx.purpose,
                                           catalog=ctx.catalog, grants=ctx.grants)
    except ZhongshuError as e:
        log.error("row scope of grant %s on %s (owner %s) refused for purpose %s: %s",
                  grant.id, ref.dataset.name, grant.owner, ctx.purpose, e.message)
        kind = "is not valid SQL for a row scope" if isinstance(e, BadQuery) else \
            "reads what its owner may not read now"
        raise DatasetUnavailable(
            f"`{ref.dataset.name}` cannot be read through grant `{grant.id}` now: its row "
            f"scope {kind}; its owner `{grant.owner}` must correct it") from None
    finally:
        _EXPANDING.reset(token)
    ctx.scoped_through.update(governed.datasets)
    ctx.lookups.extend(governed.lookups)  # charged to the scope's owner at every run
    for g in governed.grants:
        ctx.scope_grants.setdefault(g.id, g)
    return predicate
