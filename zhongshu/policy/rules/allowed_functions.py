"""Rule: every function the query calls is on the allow-list (``ALLOWED_FUNCTIONS``)."""

from __future__ import annotations

import re

from sqlglot import exp

from zhongshu.errors import FunctionNotAllowed
from zhongshu.policy.context import Context
from zhongshu.policy.functions import ALLOWED_FUNCTIONS, function_name

# Typed sqlglot nodes that are syntax rather than callable functions.
_STRUCTURAL = frozenset({"cast", "trycast", "case", "if", "coalesce", "extract"})
# Keywords DuckDB evaluates without parentheses that only read the clock.
_CLOCK = frozenset({"current_time", "current_timestamp", "localtime", "localtimestamp"})
_CALL = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(")


def _allowed(name: str) -> bool:
    return name in ALLOWED_FUNCTIONS or name.replace("_", "") in ALLOWED_FUNCTIONS


def allowed_functions(e: exp.Expr, ctx: Context) -> exp.Expr:
    """Guarantee that every function ``e`` calls is allowed, under the name it is written
    with and under the name DuckDB will be asked to call.

    A keyword DuckDB evaluates without parentheses is allowed only if it reads the clock
    (``current_timestamp``…): ``session_user``, ``current_catalog`` and the like name the
    engine's own user and catalog. Literal syntax sqlglot models as a function (``{'a': 1}``,
    ``[1, 2]``) is allowed: its elements are checked like the rest.

    Returns ``e`` unchanged.

    Raises:
        FunctionNotAllowed: a function (or engine keyword) off the list.
    """
    for node in e.walk():
        name = function_name(node)
        if name is None or _allowed(name):
            continue
        if not isinstance(node, exp.Anonymous):
            if node.key in _STRUCTURAL:
                continue
            # what DuckDB will actually be asked to call, e.g. TIMESTAMP_TRUNC → DATE_TRUNC
            m = _CALL.match(node.sql("duckdb"))
            if m is not None and m.group(1).lower() in ALLOWED_FUNCTIONS:
                continue
            if m is None and (name in _CLOCK or _has_arguments(node)):
                continue
        raise FunctionNotAllowed(f"function `{name}` is not allowed in hub queries; "
                                 "see docs/query.md for the functions you can use")
    return e


def _has_arguments(node: exp.Expr) -> bool:
    return any(v is not None for v in node.args.values())
