"""Roll-ups over union datasets: decomposable aggregates pushed down to each district.

A query over one union dataset of the form ``SELECT <keys and aggregates> FROM <union>
[WHERE …] GROUP BY <keys> [HAVING …] [ORDER BY …] [LIMIT …]`` with aggregates ``count``,
``sum``, ``min``, ``max`` and ``avg`` (no ``DISTINCT``, no window) decomposes: each
district hub is sent the **partial** aggregate of its own part (its filters, its groups:
``count`` and ``sum`` as themselves, ``avg`` as a sum and a count), and the city merges the
partials (``count`` and ``sum`` by summing, ``min`` by min, ``max`` by max, ``avg`` as the
sum of sums over the sum of counts), then applies ``HAVING``, ``ORDER BY`` and ``LIMIT``. So a
district sends one row per group, never its rows.

:func:`decompose` returns None for anything else; the caller then fetches rows.

>>> import sqlglot
>>> q = sqlglot.parse_one("SELECT district, count(*) AS n, avg(x) FROM v AS e WHERE y > 1 "
...                       "GROUP BY district ORDER BY n DESC")
>>> r = decompose(q, ["district", "n", "avg(x)"])
>>> print(r.partial.sql("duckdb"))
SELECT district AS zs_k0, COUNT(*) AS zs_a0, SUM(x) AS zs_a1, COUNT(x) AS zs_a2 FROM v AS e \
WHERE y > 1 GROUP BY district
>>> print(r.final.sql("duckdb"))
SELECT zs_k0 AS district, SUM(zs_a0) AS n, SUM(zs_a1) / SUM(zs_a2) AS "avg(x)" FROM zs_partials \
GROUP BY zs_k0 ORDER BY n DESC
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

PARTIALS = "zs_partials"
_AGGS = (exp.Count, exp.Sum, exp.Min, exp.Max, exp.Avg)


@dataclass(frozen=True)
class Rollup:
    """The partial aggregate each district runs (over the same FROM and WHERE as the
    query) and the final query the city runs over the partials (table ``PARTIALS``)."""

    partial: exp.Select
    final: exp.Select


def decompose(query: exp.Expr, names: list[str] | None = None) -> Rollup | None:
    """The roll-up of ``query`` (module docstring), or None when it does not decompose.
    ``names`` are the answer's column names (default: the query's own), kept in the final.
    """
    if not isinstance(query, exp.Select) or query.args.get("joins") or \
            query.args.get("distinct") or query.args.get("with_") or \
            query.args.get("from_") is None or query.args.get("laterals"):
        return None
    for arg in ("expressions", "where", "group", "having", "order", "qualify"):
        value = query.args.get(arg)
        for part in value if isinstance(value, list) else [value]:
            if part is None:
                continue
            for n in part.walk():
                if isinstance(n, (exp.Window, exp.Query, exp.Subquery, exp.Filter,
                                  exp.WithinGroup, exp.Ordered)) and arg != "order" or \
                        isinstance(n, (exp.Window, exp.Query, exp.Subquery)) or (
                        isinstance(n, exp.Star) and not isinstance(n.parent, exp.Count)):
                    return None
    if query.args.get("qualify") is not None:
        return None
    group = query.args.get("group")
    if group is not None and any(group.args.get(a) for a in ("rollup", "cube",
                                                             "grouping_sets", "all")):
        return None
    keys = list(group.expressions) if group is not None else []
    selects = list(query.expressions)
    for i, k in enumerate(keys):  # GROUP BY 1, or a select item's alias
        if isinstance(k, exp.Literal) and k.is_int and 0 < int(k.this) <= len(selects):
            keys[i] = selects[int(k.this) - 1].unalias()
        elif isinstance(k, exp.Column) and not k.table:
            for s in selects:
                if isinstance(s, exp.Alias) and s.alias == k.name:
                    keys[i] = s.unalias()
    aggs: list[exp.Expr] = []
    for part in (*selects, query.args.get("having"), query.args.get("order")):
        if part is None:
            continue
        for node in part.find_all(exp.AggFunc):
            if not isinstance(node, _AGGS) or node.find(exp.Distinct) is not None or \
                    any(isinstance(n, exp.AggFunc) and n is not node for n in node.walk()):
                return None
            aggs.append(node)
    if not aggs:
        return None
    partial_items: list[exp.Expr] = [exp.alias_(k.copy(), f"zs_k{i}")
                                     for i, k in enumerate(keys)]
    merged: dict[str, exp.Expr] = {}
    n = 0

    def part_col(e: exp.Expr) -> exp.Column:
        nonlocal n
        partial_items.append(exp.alias_(e, f"zs_a{n}"))
        n += 1
        return exp.column(f"zs_a{n - 1}")

    for a in aggs:
        sig = a.sql("duckdb")
        if sig in merged:
            continue
        if isinstance(a, exp.Count):
            merged[sig] = exp.func("SUM", part_col(a.copy()))
        elif isinstance(a, exp.Sum):
            merged[sig] = exp.func("SUM", part_col(a.copy()))
        elif isinstance(a, exp.Min):
            merged[sig] = exp.func("MIN", part_col(a.copy()))
        elif isinstance(a, exp.Max):
            merged[sig] = exp.func("MAX", part_col(a.copy()))
        else:
            s = exp.func("SUM", part_col(exp.func("SUM", a.this.copy())))
            c = exp.func("SUM", part_col(exp.func("COUNT", a.this.copy())))
            merged[sig] = exp.Div(this=s, expression=c)
    key_sql = {k.sql("duckdb"): i for i, k in enumerate(keys)}

    def to_final(node: exp.Expr) -> exp.Expr:
        sig = node.sql("duckdb")
        if isinstance(node, exp.AggFunc) and sig in merged:
            return merged[sig].copy()
        if sig in key_sql and not isinstance(node, exp.Alias):
            return exp.column(f"zs_k{key_sql[sig]}")
        return node

    partial = exp.Select(expressions=partial_items)
    partial.set("from_", query.args["from_"].copy())
    if query.args.get("where") is not None:
        partial.set("where", query.args["where"].copy())
    if keys:
        partial.set("group", exp.Group(expressions=[k.copy() for k in keys]))
    out_names = names or list(query.named_selects)
    if len(out_names) != len(selects):
        return None
    final_items = []
    for name, s in zip(out_names, selects, strict=True):
        final_items.append(exp.alias_(s.unalias().copy().transform(to_final), name,
                                      quoted=not name.isidentifier() or name != name.lower()))
    final = exp.Select(expressions=final_items).from_(PARTIALS)
    if keys:
        final.set("group", exp.Group(expressions=[exp.column(f"zs_k{i}")
                                                  for i in range(len(keys))]))
    for arg in ("having", "order", "limit", "offset"):
        if query.args.get(arg) is not None:
            final.set(arg, query.args[arg].copy().transform(to_final))
    # every column left must be a partial's: anything else did not decompose
    for col in final.find_all(exp.Column):
        if not col.name.startswith(("zs_k", "zs_a")) and not any(
                col.name == nm for nm in out_names) or col.table:
            return None
    return Rollup(partial, final)
