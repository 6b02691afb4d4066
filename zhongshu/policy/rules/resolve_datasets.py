"""Rule: every table the query names is, where it stands, a dataset the caller may know of or
a CTE visible there — resolved scope by scope (sqlglot's scope analysis), never by name alone.

A CTE is visible in the query that defines it, after its definition: in the later CTEs of its
WITH, in that query's body and in every query nested in it (subqueries, derived tables, set
operation branches, lateral joins). A one-part name anywhere else — a CTE of a sibling or
nested query, an alias, anything an engine's catalog might hold (``duckdb_views``,
``pg_settings``, ``sqlite_master``, a source's raw table) — is no dataset, and refused.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.scope import Scope, traverse_scope

from zhongshu.errors import (
    DatasetNotFound,
    DatasetUnavailable,
    FunctionNotAllowed,
    StatementNotAllowed,
)
from zhongshu.policy.context import REF, Context, DatasetRef
from zhongshu.policy.relations import CTE_META, RAW_PREFIX


def resolve_datasets(e: exp.Expr, ctx: Context) -> exp.Expr:
    """Resolve every table reference of ``e``, in its own scope, to a dataset
    (``namespace.name``) visible to the caller or to a CTE visible at that point; record each
    dataset in ``ctx.refs`` (and the query's CTE names in ``ctx.ctes``).

    Each CTE is numbered and each reference to it marked with its number (``CTE_META``):
    ``governed_views`` gives the CTEs the hub's names (``relations.rename_ctes``), so no name
    the caller wrote reaches an engine.

    This is where a dataset whose source schema drifted is refused (the query layer takes
    that decision from here); whether its source answers *now* is the query layer's to say,
    at each execution, from the sources' live state.

    Returns ``e``, its dataset tables marked with their reference, its CTEs with their number.

    Raises:
        StatementNotAllowed: a name starts with the hub's reserved ``__raw__`` prefix; two
            CTEs of one WITH share a name; a table stands where no scope reads it.
        FunctionNotAllowed: a table function (``read_csv(…)``, ``query(…)``…).
        DatasetNotFound: a name that is no dataset the caller may see (unlisted and
            ungranted datasets are indistinguishable from missing ones), or a one-part name
            that is no CTE visible where it stands.
        DatasetUnavailable: the dataset's source schema no longer matches its definition.
    """
    for ident in e.find_all(exp.Identifier):
        if ident.name.lower().startswith(RAW_PREFIX):
            raise StatementNotAllowed(f"names starting with `{RAW_PREFIX}` are reserved by "
                                      "the hub")
    _number_ctes(e, ctx)
    home = _home_scopes(e)
    for table in list(e.find_all(exp.Table)):
        if not isinstance(table.this, exp.Identifier):
            raise FunctionNotAllowed("table functions are not allowed; name a dataset "
                                     "(`namespace.name`)")
        scope = home.get(id(table))
        if scope is None:
            raise StatementNotAllowed("a table may stand only in FROM or JOIN; name a dataset "
                                      "(`namespace.name`)")
        parts = [p.name for p in (table.args.get("catalog"), table.args.get("db"), table.this)
                 if p is not None]
        name = ".".join(parts).lower()
        if len(parts) == 1:
            cte = _visible_cte(scope, name)
            if cte is None:
                raise DatasetNotFound(f"no dataset `{name}`; datasets are named "
                                      "`namespace.name` (see `GET /v1/catalog`), and a CTE "
                                      "is known only inside the query that defines it")
            table.meta[CTE_META] = cte.meta[CTE_META]
            continue
        if len(parts) != 2:
            raise DatasetNotFound(f"no dataset `{name}`; datasets are named `namespace.name`, "
                                  "see `GET /v1/catalog`")
        ds = ctx.catalog.dataset(name)
        if ds is None or not ctx.grants.visible(ctx.caller, ds):
            raise DatasetNotFound(f"no dataset `{name}`; `GET /v1/catalog` lists the datasets "
                                  "you can use")
        if ds.status == "drift":
            raise DatasetUnavailable(f"dataset `{ds.name}` is unavailable: its source's "
                                     "schema changed since its owner declared it, and the "
                                     "owner must update the declaration")
        if ds.status == "invalid":
            raise DatasetUnavailable(f"dataset `{ds.name}` is unavailable: its owner's "
                                     "declaration does not match its source yet (`zhongshu "
                                     "catalog check` shows the owner where)")
        table.meta[REF] = len(ctx.refs)
        ctx.refs.append(DatasetRef(ds, (table.alias or table.name).lower()))
    return e


def _number_ctes(e: exp.Expr, ctx: Context) -> None:
    """Number every CTE of ``e`` (``CTE_META``), refusing two of one name in one WITH."""
    for index, cte in enumerate(e.find_all(exp.CTE)):
        cte.meta[CTE_META] = index
        ctx.ctes.add(cte.alias.lower())
    for with_ in e.find_all(exp.With):
        names = [c.alias.lower() for c in with_.expressions]
        if len(set(names)) != len(names):
            raise StatementNotAllowed("two CTEs of one WITH have the same name")


def _home_scopes(e: exp.Expr) -> dict[int, Scope]:
    """Table node id → the innermost scope that reads it (sqlglot's scope analysis).

    Raises:
        StatementNotAllowed: sqlglot cannot build the query's scopes.
    """
    try:
        scopes = traverse_scope(e)
    except OptimizeError:
        raise StatementNotAllowed("the query's structure is not supported; simplify its "
                                  "subqueries") from None
    home: dict[int, Scope] = {}
    for scope in scopes:  # innermost first: each scope comes before the scope enclosing it
        for table in scope.tables:
            home.setdefault(id(table), scope)
    return home


def _visible_cte(scope: Scope, name: str) -> exp.CTE | None:
    """The CTE that the one-part ``name`` (lower case) reads in ``scope``, or None.

    Names compare case-insensitively, as the hub's dialect (DuckDB) does; an inner
    definition shadows an outer one (sqlglot lists the outer ones first).
    """
    found: exp.CTE | None = None
    for key, source in scope.cte_sources.items():
        if key.lower() != name or not isinstance(source, Scope):
            continue
        cte = source.expression.find_ancestor(exp.CTE)
        if cte is not None and isinstance(cte.meta.get(CTE_META), int):
            found = cte
    return found
