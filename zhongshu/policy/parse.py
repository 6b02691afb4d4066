"""Parsing the caller's text: exactly one statement of DuckDB SQL, or a clean refusal."""

from __future__ import annotations

import logging
import re

import sqlglot
from sqlglot import exp

from zhongshu.errors import SqlSyntax, StatementNotAllowed

# sqlglot logs unparsed statements at WARNING, with the caller's SQL: keep that out of logs
logging.getLogger("sqlglot").setLevel(logging.ERROR)
_QUERY_STARTS = {"SELECT", "WITH", "FROM", "(", "VALUES", "TABLE"}


def parse(sql: str) -> exp.Expr:
    """Parse one statement of DuckDB SQL.

    sqlglot parses recursively: a text nested too deeply raises ``RecursionError``, which
    ``firewall.govern`` (the only caller) turns into ``SqlSyntax`` for parsing and the rules
    at once.

    Raises:
        SqlSyntax: the text does not parse (the message points at the position), or is empty.
        StatementNotAllowed: more than one statement, or a statement that is not a query.
    """
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except sqlglot.ParseError as e:
        first = _first_word(sql)
        if first and first not in _QUERY_STARTS:
            raise StatementNotAllowed(f"{first} statements are not allowed; only SELECT is "
                                      "accepted (the hub never changes a source)") from None
        err = e.errors[0] if e.errors else {}
        where = f" at line {err.get('line')}, column {err.get('col')}" if err.get("line") else ""
        desc = str(err.get("description") or "invalid SQL").split(". Line")[0]
        raise SqlSyntax(f"SQL syntax error{where}: {desc}") from None
    except sqlglot.errors.TokenError:
        raise SqlSyntax("SQL syntax error: unterminated string or comment") from None
    if not statements:
        raise SqlSyntax("empty query: send one SELECT statement")
    if len(statements) > 1:
        raise StatementNotAllowed("send exactly one statement (found "
                                  f"{len(statements)}); only SELECT is accepted")
    return statements[0]


def _first_word(sql: str) -> str:
    """The first keyword of ``sql``, past comments, upper case.

    >>> _first_word("/* hi */ -- x\\n  drop table t")
    'DROP'
    """
    text = re.sub(r"(--[^\n]*\n?|/\*.*?\*/|\s)+", " ", sql, flags=re.S).strip()
    m = re.match(r"\(|[A-Za-z_]+", text)
    return m.group(0).upper() if m else ""
