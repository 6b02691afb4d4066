"""Rule: every table the query names is a dataset the caller may know of, or one of its CTEs."""

from __future__ import annotations

from sqlglot import exp

from zhongshu.errors import (
    DatasetNotFound,
    DatasetUnavailable,
    FunctionNotAllowed,
    StatementNotAllowed,
)
from zhongshu.policy.context import REF, Context, DatasetRef
from zhongshu.policy.relations import RAW_PREFIX


def resolve_datasets(e: exp.Expr, ctx: Context) -> exp.Expr:
    """Resolve every table reference of ``e`` to a dataset (``namespace.name``) visible to
    the caller, or to a CTE of the query; record each in ``ctx.refs`` (and its CTE names in
    ``ctx.ctes``).

    This is where a dataset whose source schema drifted is refused (the query layer takes
    that decision from here); whether its source answers *now* is the query layer's to say,
    at each execution, from the sources' live state.

    Returns ``e``, its dataset tables marked with their reference.

    Raises:
        StatementNotAllowed: a name starts with the hub's reserved ``__raw__`` prefix.
        FunctionNotAllowed: a table function (``read_csv(…)``, ``query(…)``…).
        DatasetNotFound: a name that is no dataset the caller may see (unlisted and
            ungranted datasets are indistinguishable from missing ones).
        DatasetUnavailable: the dataset's source schema no longer matches its definition.
    """
    ctx.ctes = {str(c.alias).lower() for c in e.find_all(exp.CTE)}
    for ident in e.find_all(exp.Identifier):
        if ident.name.lower().startswith(RAW_PREFIX):
            raise StatementNotAllowed(f"names starting with `{RAW_PREFIX}` are reserved by "
                                      "the hub")
    for table in list(e.find_all(exp.Table)):
        if not isinstance(table.this, exp.Identifier):
            raise FunctionNotAllowed("table functions are not allowed; name a dataset "
                                     "(`namespace.name`)")
        parts = [p.name for p in (table.args.get("catalog"), table.args.get("db"), table.this)
                 if p is not None]
        name = ".".join(parts).lower()
        if len(parts) == 1 and name in ctx.ctes:
            continue
        if len(parts) != 2:
            raise DatasetNotFound(f"no dataset `{name}`; datasets are named `namespace.name`, "
                                  "see `GET /v1/catalog`")
        ds = ctx.catalog.dataset(name)
        if ds is None or not ctx.grants.visible(ctx.caller, ds):
            raise DatasetNotFound(f"no dataset `{name}`; `GET /v1/catalog` lists the datasets "
                                  "you can use")
        if ds.status == "drift":
            raise DatasetUnavailable(f"dataset `{ds.name}` is unavailable: its source schema "
                                     "changed; the owner has been told")
        table.meta[REF] = len(ctx.refs)
        ctx.refs.append(DatasetRef(ds, (table.alias or table.name).lower()))
    return e
