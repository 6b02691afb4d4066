"""What a wire statement is, and how its parameters are bound.

Drivers send prepared statements (``$1``) by default; the hub answers them as the literal
query: each bound value is written into the text as a SQL literal (outside strings, quoted
names and comments), so the firewall, the plan cache (which templatizes literals) and the
ledger see exactly what a client that wrote the literal would have sent.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlglot
from sqlglot import exp

from zhongshu.protocol.pgwire import types as t

_PLACEHOLDER = re.compile(r"\$(\d+)")


def _spans(sql: str) -> list[tuple[int, int, str]]:
    """``(start, end, kind)`` of the parts of ``sql`` outside strings, quoted names and
    comments (``kind`` ``code``) — placeholders are looked for only there."""
    out, i, n, start = [], 0, len(sql), 0
    while i < n:
        c = sql[i]
        if c in ("'", '"'):
            out.append((start, i, "code"))
            j = i + 1
            while j < n:
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            i = start = j + 1
        elif sql.startswith("--", i):
            out.append((start, i, "code"))
            j = sql.find("\n", i)
            i = start = n if j < 0 else j
        elif sql.startswith("/*", i):
            out.append((start, i, "code"))
            j = sql.find("*/", i + 2)
            i = start = n if j < 0 else j + 2
        elif c == "$" and (m := re.match(r"\$([A-Za-z_]\w*)?\$", sql[i:])):
            out.append((start, i, "code"))
            tag = m.group(0)
            j = sql.find(tag, i + len(tag))
            i = start = n if j < 0 else j + len(tag)
        else:
            i += 1
    out.append((start, n, "code"))
    return out


def placeholders(sql: str) -> int:
    """The highest ``$n`` in the statement's code (0: none)."""
    found = [int(m.group(1)) for s, e, _ in _spans(sql)
             for m in _PLACEHOLDER.finditer(sql, s, e)]
    return max(found, default=0)


def literal(value: Any) -> str:
    """A bound value as a SQL literal.

    >>> literal("it's"), literal(3), literal(None), literal(dt.date(2024, 5, 1))
    ("'it''s'", '3', 'NULL', "DATE '2024-05-01'")
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return f"CAST('{value!r}' AS DOUBLE)"
        return repr(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        kind = "TIMESTAMPTZ" if value.tzinfo else "TIMESTAMP"
        return f"{kind} '{value.isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, (bytes, bytearray)):
        return "'" + "".join(f"\\x{b:02x}" for b in value) + "'::BLOB"
    return "'" + str(value).replace("'", "''") + "'"


def bind(sql: str, values: list[Any]) -> str:
    """``sql`` with each ``$n`` replaced by the literal of ``values[n-1]``.

    >>> bind("SELECT * FROM t WHERE a = $1 AND b = '$2' AND c = $2", ["x", 4])
    "SELECT * FROM t WHERE a = 'x' AND b = '$2' AND c = 4"
    """
    if not values:
        return sql
    out = []
    last = 0
    for s, e, _ in _spans(sql):
        for m in _PLACEHOLDER.finditer(sql, s, e):
            k = int(m.group(1))
            if not 1 <= k <= len(values):
                raise ValueError(f"there is no parameter ${k}")
            out.append(sql[last:m.start()])
            out.append(literal(values[k - 1]))
            last = m.end()
    out.append(sql[last:])
    return "".join(out)


def infer_param_types(sql: str, n: int, column_types: dict[str, int]) -> list[int]:
    """The OID of each of ``n`` parameters a client did not type, as PostgreSQL would infer
    it: from the column a placeholder is compared with (``column_types``: column name → OID
    over the datasets the caller sees), ``int8`` in ``LIMIT``/``OFFSET``; text otherwise."""
    oids = [t.TEXT] * n
    try:
        tree = sqlglot.parse_one(sql, read="postgres")
    except sqlglot.errors.ParseError:
        return oids
    if tree is None:
        return oids
    for node in tree.find_all(exp.Placeholder, exp.Parameter):
        text = node.sql("postgres")
        m = _PLACEHOLDER.fullmatch(text)
        if not m or not 1 <= int(m.group(1)) <= n:
            continue
        k = int(m.group(1)) - 1
        parent = node.parent
        if isinstance(parent, (exp.Limit, exp.Offset)) or isinstance(
                getattr(parent, "parent", None), (exp.Limit, exp.Offset)):
            oids[k] = t.INT8
            continue
        while isinstance(parent, (exp.Paren, exp.Tuple)) or (
                isinstance(parent, exp.In) and node not in (parent.this,)):
            if isinstance(parent, exp.In):
                break
            parent = parent.parent
        other = None
        if isinstance(parent, exp.Binary):
            other = parent.right if parent.left is node else parent.left
        elif isinstance(parent, exp.In):
            other = parent.this
        elif isinstance(parent, exp.Between):
            other = parent.this
        if isinstance(other, exp.Column) and other.name.lower() in column_types:
            oids[k] = column_types[other.name.lower()]
    return oids


@dataclass(frozen=True)
class Command:
    """A client command answered by the session itself (no exchange): its tag, and for
    ``SET``/``SHOW`` the setting and value."""

    kind: str  # "begin" | "commit" | "rollback" | "set" | "reset" | "show" | "empty" | "noop"
    name: str = ""
    value: str = ""


_BEGIN = re.compile(r"^(BEGIN|START\s+TRANSACTION)\b", re.I)
_COMMIT = re.compile(r"^(COMMIT|END)\b", re.I)
_ROLLBACK = re.compile(r"^(ROLLBACK|ABORT)\b", re.I)
_SET = re.compile(r"^SET\s+(?:SESSION\s+|LOCAL\s+)?(?!TRANSACTION\b|SESSION\s+CHARACTERISTICS)"
                  r"([\w.\"]+)\s*(?:=|\bTO\b)\s*(.+)$", re.I | re.S)
_SET_TIME_ZONE = re.compile(r"^SET\s+(?:SESSION\s+|LOCAL\s+)?TIME\s+ZONE\s+(.+)$", re.I | re.S)
_SET_OTHER = re.compile(r"^SET\s+(SESSION\s+CHARACTERISTICS|TRANSACTION|NAMES)\b", re.I)
_RESET = re.compile(r"^RESET\s+([\w.\"]+)$", re.I)
_SHOW = re.compile(r"^SHOW\s+(.+)$", re.I | re.S)
_NOOP = re.compile(r"^(DISCARD\s+ALL|DEALLOCATE\b|CLOSE\s+ALL|UNLISTEN\b|SAVEPOINT\b|"
                   r"RELEASE\b)", re.I)


def command(sql: str) -> Command | None:
    """The client command ``sql`` is, or None for a query."""
    s = sql.strip().rstrip(";").strip()
    if not s:
        return Command("empty")
    if _BEGIN.match(s):
        return Command("begin")
    if _COMMIT.match(s):
        return Command("commit")
    if _ROLLBACK.match(s) and not re.match(r"^ROLLBACK\s+TO\b", s, re.I):
        return Command("rollback")
    if m := _SET_TIME_ZONE.match(s):
        return Command("set", "timezone", _unquote(m.group(1)))
    if _SET_OTHER.match(s):
        return Command("noop", "SET")
    if m := _SET.match(s):
        return Command("set", m.group(1).strip('"').lower(), _unquote(m.group(2)))
    if m := _RESET.match(s):
        return Command("reset", m.group(1).strip('"').lower())
    if m := _SHOW.match(s):
        return Command("show", " ".join(m.group(1).strip('"').lower().split()))
    if m := _NOOP.match(s):
        return Command("noop", m.group(1).split()[0].upper())
    return None


def _unquote(v: str) -> str:
    v = v.strip()
    if len(v) >= 2 and v[0] == v[-1] == "'":
        return v[1:-1].replace("''", "'")
    return v
