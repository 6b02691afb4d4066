"""Rule: queries nest at most ``MAX_NESTING`` levels deep (subqueries, CTEs, set operations).

sqlglot parses and renders SQL recursively. The parser itself refuses deeply nested
*expressions* (it recurses more per level than anything after it); but nested *queries* cost
the renderer more per level than the parser: measured with sqlglot 30 under Python's default
recursion limit, 79 nested ``FROM (SELECT …)`` parse and pass the rules, then overflow when
the query layer renders the planned query. Bounding the nesting here, well under that, is
what lets ``govern`` be the one place a query is refused for its depth.
"""

from __future__ import annotations

from sqlglot import exp

from zhongshu.errors import SqlSyntax
from zhongshu.policy.context import Context

MAX_NESTING = 32
TOO_DEEP = "the query is nested too deeply; flatten its expressions or subqueries"


def nesting(e: exp.Expr) -> int:
    """How many SELECTs deep ``e`` nests, at its deepest (iteratively: any depth is measured).

    >>> import sqlglot
    >>> nesting(sqlglot.parse_one("SELECT a FROM (SELECT a FROM (SELECT 1 AS a) AS x) AS y"))
    3
    >>> nesting(sqlglot.parse_one("SELECT 1 UNION SELECT 2"))
    1
    """
    deepest = 0
    stack: list[tuple[exp.Expr, int]] = [(e, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, exp.Select):
            depth += 1
            deepest = max(deepest, depth)
        stack.extend((child, depth) for child in node.iter_expressions())
    return deepest


def bounded_nesting(e: exp.Expr, ctx: Context) -> exp.Expr:
    """Guarantee that ``e`` nests at most ``MAX_NESTING`` SELECTs deep.

    Returns ``e`` unchanged.

    Raises:
        SqlSyntax: deeper (the same refusal as a text too deep for the parser).
    """
    if nesting(e) > MAX_NESTING:
        raise SqlSyntax(f"{TOO_DEEP} (at most {MAX_NESTING} nested queries)")
    return e
