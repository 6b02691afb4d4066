"""The NGSI-LD query language (``q``, GS CIM 009 §4.9) parsed into a small tree.

Terms joined by ``;`` (and) and ``|`` (or, looser than and), grouped by parentheses::

    totalSpotNumber>100;(name=="Lot 3"|name~="(?i)north")
    status==free,occupied        a value list
    totalSpotNumber==10..200     a range
    !occupiedSpotNumber          the attribute is absent

Values are numbers, double-quoted strings, ``true``/``false`` and bare date-times; this
module only reads text into :class:`Term` objects — it never writes SQL (``protocol.ngsild.sql``
turns a tree into sqlglot expressions, values as literals). Compound attribute paths
(``a.b``, ``a[b]``) are refused, not guessed at.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime

from zhongshu.errors import BadRequest

MAX_Q = 4000  # characters
MAX_TERMS = 64
MAX_DEPTH = 16
OPS = ("!~=", "==", "!=", ">=", "<=", "~=", ">", "<")
_ATTR = re.compile(r"[^=!<>~;|()\s]+")
_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")


class QueryError(BadRequest):
    """A ``q`` (or another NGSI-LD parameter) that cannot be read; the message says where."""


@dataclass(frozen=True)
class DateTime:
    """A bare date, time or date-time value (``2026-12-02T08:00:00Z``)."""

    text: str


@dataclass(frozen=True)
class Range:
    low: Scalar
    high: Scalar


Scalar = str | int | float | bool | DateTime
Value = Scalar | Range | tuple[Scalar, ...]


@dataclass(frozen=True)
class Term:
    """``attr`` ``op`` ``value``; ``op`` None: the attribute exists (``negated``: not)."""

    attr: str
    op: str | None = None
    value: Value | None = None
    negated: bool = False


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]


Node = Term | And | Or


def parse(q: str) -> Node:
    """``q`` as a tree.

    >>> parse('a>1;b=="x"').parts[1]
    Term(attr='b', op='==', value='x', negated=False)

    Raises:
        QueryError: the text is not a query of this grammar, naming the position.
    """
    if len(q) > MAX_Q:
        raise QueryError(f"q is {len(q)} characters long; the hub reads at most {MAX_Q}")
    p = _Parser(q)
    node = p.or_(0)
    p.space()
    if p.i != len(q):
        p.fail("expected `;`, `|` or the end")
    return node


def attributes(node: Node) -> set[str]:
    """The attribute names a tree mentions."""
    if isinstance(node, Term):
        return {node.attr}
    return set().union(*(attributes(p) for p in node.parts))


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.terms = 0

    def fail(self, what: str) -> None:
        raise QueryError(f"q: {what} at character {self.i + 1}")

    def space(self) -> None:
        while self.i < len(self.s) and self.s[self.i] == " ":
            self.i += 1

    def or_(self, depth: int) -> Node:
        parts = [self.and_(depth)]
        while self.peek("|"):
            self.i += 1
            parts.append(self.and_(depth))
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def and_(self, depth: int) -> Node:
        parts = [self.unit(depth)]
        while self.peek(";"):
            self.i += 1
            parts.append(self.unit(depth))
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def peek(self, c: str) -> bool:
        self.space()
        return self.s.startswith(c, self.i)

    def unit(self, depth: int) -> Node:
        if self.peek("("):
            if depth >= MAX_DEPTH:
                self.fail(f"more than {MAX_DEPTH} nested parentheses")
            self.i += 1
            node = self.or_(depth + 1)
            if not self.peek(")"):
                self.fail("expected `)`")
            self.i += 1
            return node
        return self.term()

    def term(self) -> Term:
        self.terms += 1
        if self.terms > MAX_TERMS:
            self.fail(f"more than {MAX_TERMS} terms")
        negated = self.peek("!") and not self.s.startswith("!=", self.i) and \
            not self.s.startswith("!~=", self.i)
        if negated:
            self.i += 1
        m = _ATTR.match(self.s, self.i)
        if not m:
            self.fail("expected an attribute name")
        assert m is not None
        attr = m.group()
        if "." in attr.rsplit("/", 1)[-1].rsplit("#", 1)[-1] or "[" in attr:
            self.fail(f"compound attribute paths (`{attr}`) are not supported; name an "
                      "attribute")
        self.i = m.end()
        op = next((o for o in OPS if self.s.startswith(o, self.i)), None)
        if op is None or negated:
            if negated and op is not None:
                self.fail("`!` goes only before an attribute name that stands alone")
            return Term(attr, negated=negated)
        self.i += len(op)
        if op in ("~=", "!~="):
            value: Value = self.string("a pattern in double quotes")
        else:
            value = self.value(op)
        return Term(attr, op, value)

    def string(self, what: str) -> str:
        if not self.s.startswith('"', self.i):
            self.fail(f"expected {what}")
        out, j = [], self.i + 1
        while j < len(self.s) and self.s[j] != '"':
            if self.s[j] == "\\" and j + 1 < len(self.s):
                j += 1
            out.append(self.s[j])
            j += 1
        if j >= len(self.s):
            self.fail("a string is not closed by `\"`")
        self.i = j + 1
        return "".join(out)

    def scalar(self) -> Scalar:
        if self.s.startswith('"', self.i):
            return self.string("a string")
        m = re.compile(r"[^;|(),\s]+?(?=\.\.|[;|),\s]|$)").match(self.s, self.i)
        if not m:
            self.fail("expected a value")
        assert m is not None
        text = m.group()
        self.i = m.end()
        if text in ("true", "false"):
            return text == "true"
        if _NUMBER.fullmatch(text):
            n = float(text)
            if not math.isfinite(n):
                self.fail("a number out of range")
            return int(text) if re.fullmatch(r"-?\d+", text) else n
        try:
            (datetime if "T" in text else date).fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"`{text}` is not a value: quote strings (\"…\"); numbers, true, "
                      "false and ISO 8601 date-times stand bare")
        return DateTime(text)

    def value(self, op: str) -> Value:
        first = self.scalar()
        if self.s.startswith("..", self.i):
            if op not in ("==", "!="):
                self.fail("a range goes only with == or !=")
            self.i += 2
            return Range(first, self.scalar())
        if self.s.startswith(",", self.i):
            if op not in ("==", "!="):
                self.fail("a list goes only with == or !=")
            items = [first]
            while self.s.startswith(",", self.i):
                self.i += 1
                items.append(self.scalar())
            return tuple(items)
        return first
