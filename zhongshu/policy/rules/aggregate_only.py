"""Rule: a dataset read under a grant with an ``aggregate_only`` column is read only as an
aggregate dataset — the caller's query parsed into a request, the SQL written by the hub
(``zhongshu.policy.aggregate``)."""

from __future__ import annotations

from sqlglot import exp

from zhongshu.errors import StatementNotAllowed
from zhongshu.policy.aggregate import aggregate_sql, is_aggregate, parse_request
from zhongshu.policy.context import Context


def aggregate_only(e: exp.Expr, ctx: Context) -> exp.Expr:
    """Guarantee that a query reading an aggregate dataset reads it alone, in the one shape
    of ``zhongshu.policy.aggregate``, and is replaced whole by the query the hub writes for
    it: the caller's SQL never reaches an engine, so no value of an aggregate-only column
    (nor of any other column of that dataset) can be selected, compared, cast or echoed.

    Returns ``e`` unchanged when no reference is to an aggregate dataset; otherwise the hub's
    query (marked ``ctx.aggregate``).

    Raises:
        StatementNotAllowed: the query reads another dataset too, or is not of the shape.
        FunctionNotAllowed, ColumnNotGranted: see ``aggregate.parse_request``.
    """
    refs = [r for r in ctx.refs if is_aggregate(r)]
    if not refs:
        return e
    if len(ctx.refs) != 1:
        name = refs[0].dataset.name
        raise StatementNotAllowed(f"`{name}` is an aggregate dataset for you: read it alone "
                                  "(no join, subquery or second reference), and combine "
                                  "answers on your side")
    ctx.aggregate = True
    return aggregate_sql(parse_request(e, ctx, refs[0]))
