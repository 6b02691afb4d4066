"""Rule: a column granted ``aggregate_only`` is read only in aggregates over ≥ k rows."""

from __future__ import annotations

from sqlglot import exp

from zhongshu.errors import ColumnNotGranted
from zhongshu.policy.context import Context

_AGGREGATES = (exp.Count, exp.Sum, exp.Avg, exp.Stddev, exp.StddevPop, exp.StddevSamp,
               exp.Variance, exp.VariancePop)


def aggregate_only(e: exp.Expr, ctx: Context) -> exp.Expr:
    """Guarantee that each column granted ``aggregate_only`` appears only inside count, sum,
    avg, stddev or variance of its own SELECT (never in a window), and add to every SELECT
    aggregating one ``HAVING count(*) >= k`` (the largest k of the columns it aggregates).

    Returns ``e``, its aggregating SELECTs given the floor in place.

    Raises:
        ColumnNotGranted: such a column used outside an allowed aggregate.
    """
    limited: dict[str, int] = {}
    for r in ctx.refs:
        for name, mask in (r.access.masking.items() if r.access else ()):
            if mask.kind == "aggregate_only":
                limited[name] = max(limited.get(name, 0), mask.k)
    if not limited:
        return e
    selects: dict[int, tuple[exp.Select, int]] = {}
    for col in list(e.find_all(exp.Column)):
        name = col.name.lower()
        if name not in limited:
            continue
        ref = ctx.resolve(col)
        if ref is not None and (ref.access is None or name not in ref.access.masking
                                or ref.access.masking[name].kind != "aggregate_only"):
            continue  # a same-named column of another dataset
        agg = col.find_ancestor(*_AGGREGATES)
        select = col.find_ancestor(exp.Select)
        if agg is None or select is None or agg.find_ancestor(exp.Select) is not select or \
                col.find_ancestor(exp.Window) is not None:
            raise ColumnNotGranted(
                f"column `{name}` is granted to `{ctx.caller.name}` for aggregates only: use "
                "it inside count, sum, avg, stddev or variance, over groups of at least "
                f"{limited[name]} rows")
        k = max(selects.get(id(select), (select, 0))[1], limited[name])
        selects[id(select)] = (select, k)
    for select, k in selects.values():
        floor = exp.GTE(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(k))
        having = select.args.get("having")
        select.set("having", exp.Having(this=exp.and_(having.this, floor) if having else floor))
    return e
