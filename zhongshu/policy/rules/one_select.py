"""Rule: the statement is a query — SELECT, WITH … SELECT, or a set operation of them."""

from __future__ import annotations

from sqlglot import exp

from zhongshu.errors import StatementNotAllowed
from zhongshu.policy.context import Context
from zhongshu.policy.rules.no_forbidden_nodes import FORBIDDEN

_SET_OPS = (exp.Union, exp.Intersect, exp.Except)


def one_select(e: exp.Expr, ctx: Context) -> exp.Expr:
    """Guarantee that ``e`` is a SELECT (possibly with CTEs) or a UNION, INTERSECT or EXCEPT.

    Returns ``e`` unchanged.

    Raises:
        StatementNotAllowed: any other statement (the message names its kind when it is one
            that would change something).
    """
    if not isinstance(e, (exp.Select, *_SET_OPS)):
        if not isinstance(e, (exp.Command, *FORBIDDEN)):
            raise StatementNotAllowed("this is not a query: send one SELECT statement over "
                                      "datasets")
        kind = e.key.upper() if not isinstance(e, exp.Command) else str(e.this).upper()
        raise StatementNotAllowed(f"{kind} statements are not allowed; only SELECT is accepted "
                                  "(the hub never changes a source)")
    return e
