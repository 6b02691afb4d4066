"""Rule: no statement, INTO, locking clause, recursive CTE or foreign parameter anywhere."""

from __future__ import annotations

from sqlglot import exp

from zhongshu.errors import StatementNotAllowed
from zhongshu.policy.context import Context

# Statements and clauses that change or reveal engine state, wherever they are nested.
FORBIDDEN = (exp.Insert, exp.Update, exp.Delete, exp.Create, exp.Drop, exp.Alter, exp.Command,
             exp.Copy, exp.Set, exp.Pragma, exp.Use, exp.Transaction, exp.Commit,
             exp.Rollback, exp.Describe, exp.Into, exp.Lock, exp.Merge, exp.TruncateTable,
             exp.Attach, exp.Detach, exp.Install, exp.LoadData, exp.Analyze, exp.Kill,
             exp.Cache, exp.Uncache, exp.Refresh, exp.Summarize)


def no_forbidden_nodes(e: exp.Expr, ctx: Context) -> exp.Expr:
    """Guarantee that no node of ``e`` is a statement or clause of ``FORBIDDEN``, a recursive
    CTE, or a parameter other than those named in ``ctx.parameters``.

    Returns ``e`` unchanged.

    Raises:
        StatementNotAllowed: such a node is found.
    """
    for node in e.walk():
        if isinstance(node, FORBIDDEN):
            raise StatementNotAllowed(f"{node.key.upper()} is not allowed inside a query; only "
                                      "SELECT is accepted")
        if isinstance(node, exp.With) and node.args.get("recursive"):
            raise StatementNotAllowed("recursive queries are not allowed")
        if isinstance(node, exp.Placeholder) and node.name not in ctx.parameters or \
                isinstance(node, exp.Parameter):
            raise StatementNotAllowed("query parameters are not accepted; write values inline")
    return e
