"""Rule: each dataset reference becomes a governed view — a subquery over the dataset's raw
relation exposing only the columns read, masked, within the grant's row scope — and no name
the caller wrote is left for an engine to resolve (``relations``: CTEs renamed, the views'
columns bound to the views' own relations)."""

from __future__ import annotations

from sqlglot import exp

from zhongshu.errors import ColumnNotFound
from zhongshu.policy.context import Context, DatasetRef
from zhongshu.policy.masking import key_id, mask_expr
from zhongshu.policy.relations import UnboundColumn, bind_columns, raw_table, rename_ctes
from zhongshu.policy.rules.row_scope import row_scope


def governed_views(e: exp.Expr, ctx: Context) -> exp.Expr:
    """Replace each dataset table of ``e`` by its governed view (same alias and column
    aliases), drop dataset namespaces from column references
    (``traffic.passages.plate`` → ``passages.plate``), and give the caller's CTEs the hub's
    names (``relations.rename_ctes``).

    After this rule the only relations the expression reads are raw marker tables
    (``relations.raw_table``), each inside a view, and the CTEs under the hub's names: there
    is no outer filter to escape, and no name of the caller's can stand in for one the views
    read. Datasets named by row scopes are recorded in ``ctx.scoped_through``.

    Returns a new expression.

    Raises:
        DatasetUnavailable: a grant's row scope does not pass as its owner's query
            (``row_scope.row_scope``).
        ColumnNotFound: a grant's row scope reads a column its datasets do not declare.
    """
    def swap(node: exp.Expr) -> exp.Expr:
        ref = ctx.ref_of(node)
        if ref is None:
            return node
        sub = exp.Subquery(this=_view(ref, ctx),
                           alias=exp.TableAlias(this=exp.to_identifier(ref.alias)))
        alias = node.args.get("alias")
        if alias is not None and alias.args.get("columns"):
            sub.args["alias"].set("columns", alias.args["columns"])
        return sub

    out = e.transform(swap)
    # the dataset's namespace is not a relation of the rewritten query
    for col in out.find_all(exp.Column):
        if col.args.get("db") is not None:
            col.set("db", None)
            col.set("catalog", None)
    return rename_ctes(out)


def _view(ref: DatasetRef, ctx: Context) -> exp.Select:
    """``SELECT <masked granted columns> FROM <raw dataset> WHERE <row scope>``.

    Only the columns the query reads are exposed (``*`` was expanded to the granted ones): an
    unused masked column costs nothing, and keeps a query eligible for pushdown.
    """
    a = ref.access
    assert a is not None, "authorize_columns runs first"
    cols: list[exp.Expr] = []
    used = [c for c in a.columns if c in ref.columns] or list(a.columns[:1])
    for name in used:
        column = exp.column(name, quoted=True)
        mask = a.masking.get(name)
        if mask is None:
            cols.append(column)
            continue
        declared = ref.dataset.column(name)
        assert declared is not None, "grants name declared columns only"
        masked = mask_expr(column, mask, declared.type,
                           key_id(ctx.caller.name, ctx.purpose, mask.rotate))
        cols.append(exp.alias_(masked, name, quoted=True))
    for name in sorted(ref.internal - set(used)):
        cols.append(exp.column(name, quoted=True))  # an aggregate's subject: counted only
    view = exp.select(*cols).from_(raw_table(ref.dataset))
    if a.row_scope:
        view = view.where(row_scope(ref, ctx), copy=False)
    try:
        bind_columns(view, ctx.catalog.dataset)
    except UnboundColumn:
        raise ColumnNotFound("a grant's row scope reads a column its datasets do not "
                             "declare; the grant's owner must fix it") from None
    return view
