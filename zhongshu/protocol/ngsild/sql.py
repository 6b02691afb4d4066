"""An NGSI-LD query as one governed SELECT over the offered datasets.

Each dataset the caller may read becomes one arm of a ``UNION ALL`` with the same columns:
``_m`` (which offer), ``id`` (the id template, filled from the key columns), one ``a_NAME``
per attribute (``NULL`` where the caller may not read it or the dataset does not offer it),
``_lon``, ``_lat`` and ``_obs``. Filters (ids, idPattern, q, the geo-query, attrs) are
conditions of each arm; order, ``limit`` and ``offset`` are the outer query's.

Identifiers come only from the owners' declared mappings (checked names); every value of a
request is a sqlglot literal. The SQL is then governed like any caller's query: the
firewall, masks, row scopes, limits and the ledger apply to it (``protocol.exchange``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from sqlglot import exp

from zhongshu.protocol.ngsild import geo, qlang
from zhongshu.protocol.ngsild.offers import Offer
from zhongshu.protocol.ngsild.qlang import DateTime, QueryError, Range, Scalar

_NUMERIC = re.compile(r"^(U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?|INT\d|DOUBLE|FLOAT\d?|REAL|"
                      r"DECIMAL|NUMERIC)")
_TEMPORAL = re.compile(r"^(TIMESTAMP|DATE|TIME)")


@dataclass(frozen=True)
class Part:
    """One offer as one caller may read it: the attributes whose columns are granted, and
    whether its location columns are."""

    offer: Offer
    attrs: tuple[str, ...]
    located: bool
    observed: bool


@dataclass(frozen=True)
class Filters:
    """What entities a request asks for (each None: no condition)."""

    ids: tuple[str, ...] | None = None
    id_pattern: str | None = None
    q: qlang.Node | None = None
    geo: geo.GeoQuery | None = None
    attrs: tuple[str, ...] | None = None  # an entity must have one of these


def _col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def alias(attr: str) -> str:
    """The result column that carries an attribute."""
    return f"a_{attr}"


def id_expr(offer: Offer) -> exp.Expr:
    """The entity id as SQL: the template's literal text and its key columns cast to text."""
    parts = offer.mapping.id.split("{")
    out: exp.Expr | None = exp.Literal.string(parts[0]) if parts[0] else None
    for p in parts[1:]:
        key, text = p.split("}", 1)
        pieces: list[exp.Expr] = [exp.cast(_col(key), "VARCHAR")]
        if text:
            pieces.append(exp.Literal.string(text))
        for piece in pieces:
            out = piece if out is None else exp.DPipe(this=out, expression=piece, safe=True)
    assert out is not None
    return out


def _kind(coltype: str) -> str:
    if coltype == "BOOLEAN" or coltype == "BOOL":
        return "boolean"
    if _NUMERIC.match(coltype):
        return "number"
    if _TEMPORAL.match(coltype):
        return "temporal"
    return "text"


def literal(attr: str, value: Scalar, coltype: str) -> exp.Expr:
    """``value`` as a literal comparable with a column of ``coltype``.

    Raises:
        QueryError: a value of another kind than the attribute's.
    """
    kind = _kind(coltype)
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise QueryError(f"q: `{attr}` holds numbers: compare it with a number")
        return exp.Literal.number(repr(value) if isinstance(value, float) else str(value))
    if kind == "boolean":
        if not isinstance(value, bool):
            raise QueryError(f"q: `{attr}` holds true or false")
        return exp.true() if value else exp.false()
    if kind == "temporal":
        text = value.text if isinstance(value, DateTime) else value
        if not isinstance(text, str):
            raise QueryError(f"q: `{attr}` holds date-times: compare it with one "
                             "(2026-12-02T08:00:00Z)")
        try:
            t = (datetime if "T" in text or " " in text else date).fromisoformat(
                text.replace("Z", "+00:00"))
        except ValueError:
            raise QueryError(f"q: `{text}` is not an ISO 8601 date-time") from None
        iso = t.replace(tzinfo=None).isoformat() if isinstance(t, datetime) else t.isoformat()
        target = "TIMESTAMP" if isinstance(t, datetime) else "DATE"
        return exp.cast(exp.Literal.string(iso), target)
    if not isinstance(value, str):
        raise QueryError(f"q: `{attr}` holds text: quote the value (\"…\")")
    return exp.Literal.string(value)


def _mapped(part: Part, attr: str, value: Scalar) -> list[exp.Expr]:
    """The column values an attribute value stands for (through the mapping's ``values``)."""
    a = part.offer.mapping.attribute(attr)
    coltype = part.offer.column_type(a.column)
    if not a.values:
        return [literal(attr, value, coltype)]
    raw = [k for k, v in a.values.items() if v == value and type(v) is type(value)]
    if value not in a.values.values():
        raw.append(value if isinstance(value, str) else str(value).lower())
    out = []
    kind = _kind(coltype)
    for text in raw:
        try:
            if kind == "boolean":
                out.append(literal(attr, {"true": True, "false": False}[text.lower()], coltype))
            elif kind == "number":
                out.append(literal(attr, float(text) if "." in text else int(text), coltype))
            else:
                out.append(literal(attr, text, coltype))
        except (KeyError, ValueError, QueryError):
            continue  # not a value this column can hold: it matches nothing
    return out


def _term(part: Part, t: qlang.Term, names: dict[str, str]) -> exp.Expr:
    attr = names.get(t.attr)
    if attr is None or attr not in part.attrs:
        # an attribute the entity does not have (or the caller may not read): the term
        # holds only for "is absent"
        return exp.true() if t.negated else exp.false()
    a = part.offer.mapping.attribute(attr)
    col = _col(a.column)
    present = exp.Not(this=exp.Is(this=col.copy(), expression=exp.Null()))
    if t.op is None:
        return exp.Is(this=col, expression=exp.Null()) if t.negated else present
    if t.op in ("~=", "!~="):
        if _kind(part.offer.column_type(a.column)) != "text" or a.values:
            raise QueryError(f"q: `{attr}` is not text: ~= matches text attributes only")
        assert isinstance(t.value, str)
        m = exp.RegexpLike(this=col, expression=exp.Literal.string(t.value))
        return m if t.op == "~=" else exp.and_(present, exp.Not(this=m))
    value = t.value
    if a.values and t.op not in ("==", "!="):
        raise QueryError(f"q: `{attr}` is compared only with == or !=")
    if isinstance(value, Range):
        cond: exp.Expr = exp.Between(this=col, low=literal(attr, value.low, a_type(part, a)),
                                     high=literal(attr, value.high, a_type(part, a)))
    elif isinstance(value, tuple) or t.op in ("==", "!="):
        items = list(value) if isinstance(value, tuple) else [value]
        lits = [lit for v in items if v is not None and not isinstance(v, (Range, tuple))
                for lit in _mapped(part, attr, v)]
        cond = exp.In(this=col, expressions=lits) if lits else exp.false()
    else:
        assert value is not None and not isinstance(value, (Range, tuple))
        op = {">": exp.GT, ">=": exp.GTE, "<": exp.LT, "<=": exp.LTE}[t.op]
        cond = op(this=col, expression=literal(attr, value, a_type(part, a)))
    return exp.and_(present, exp.Not(this=exp.paren(cond))) if t.op == "!=" else cond


def a_type(part: Part, a: object) -> str:
    column = getattr(a, "column")  # noqa: B009 — an EntityAttribute
    return part.offer.column_type(column)


def _q(part: Part, node: qlang.Node, names: dict[str, str]) -> exp.Expr:
    if isinstance(node, qlang.Term):
        return _term(part, node, names)
    conds = [exp.paren(_q(part, p, names)) for p in node.parts]
    return exp.and_(*conds) if isinstance(node, qlang.And) else exp.or_(*conds)


def _where(part: Part, f: Filters, names: dict[str, str]) -> exp.Expr | None:
    conds: list[exp.Expr] = []
    m = part.offer.mapping
    if f.ids is not None:
        conds.append(_ids(part.offer, f.ids))
    if f.id_pattern is not None:
        conds.append(exp.RegexpLike(this=id_expr(part.offer),
                                    expression=exp.Literal.string(f.id_pattern)))
    if f.q is not None:
        conds.append(exp.paren(_q(part, f.q, names)))
    if f.geo is not None:
        if not part.located or m.location is None:
            conds.append(exp.false())
        else:
            conds.append(geo.condition(f.geo, _col(m.location.lon), _col(m.location.lat)))
    if f.attrs is not None:
        have = [a for a in f.attrs if a in part.attrs]
        conds.append(exp.or_(*(exp.Not(this=exp.Is(this=_col(m.attribute(a).column),
                                                    expression=exp.Null())) for a in have))
                     if have else exp.false())
    return exp.and_(*conds) if conds else None


def _ids(offer: Offer, ids: tuple[str, ...]) -> exp.Expr:
    """Entity ids as a condition on the key column where the template has one key (the
    text between the template's prefix and suffix), else on the whole id."""
    keys = offer.mapping.keys()
    if len(keys) != 1:
        return exp.In(this=id_expr(offer), expressions=[exp.Literal.string(i) for i in ids])
    prefix, _, suffix = offer.mapping.id.split("{", 1)[0], None, offer.mapping.id.rsplit(
        "}", 1)[1]
    coltype = offer.column_type(keys[0])
    lits: list[exp.Expr] = []
    for i in ids:
        if not (i.startswith(prefix) and i.endswith(suffix) and
                len(i) > len(prefix) + len(suffix)):
            continue
        key = i[len(prefix):len(i) - len(suffix)]
        if _kind(coltype) == "number":
            if not re.fullmatch(r"-?\d{1,18}", key):
                continue
            lits.append(exp.Literal.number(str(int(key))))
        else:
            lits.append(exp.Literal.string(key))
    return exp.In(this=_col(keys[0]), expressions=lits) if lits else exp.false()


def _arm(i: int, part: Part, every: list[str], types: dict[str, str], f: Filters,
         names: dict[str, str]) -> exp.Select:
    m = part.offer.mapping
    cols: list[exp.Expr] = [exp.alias_(exp.Literal.number(i), "_m", quoted=True),
                            exp.alias_(id_expr(part.offer), "id", quoted=True)]
    for attr in every:
        value: exp.Expr = (_col(m.attribute(attr).column) if attr in part.attrs
                           else exp.cast(exp.Null(), types[attr]))
        cols.append(exp.alias_(value, alias(attr), quoted=True))
    loc = m.location if part.located else None
    for name, column, typ in (("_lon", loc.lon if loc else None, "DOUBLE"),
                              ("_lat", loc.lat if loc else None, "DOUBLE"),
                              ("_obs", m.observed_at if part.observed else None, "VARCHAR")):
        value = exp.cast(_col(column) if column else exp.Null(), typ)
        cols.append(exp.alias_(value, name, quoted=True))
    table = exp.table_(part.offer.name.split(".")[1], db=part.offer.name.split(".")[0])
    q = exp.select(*cols).from_(table)
    where = _where(part, f, names)
    return q.where(where) if where is not None else q


def union(parts: list[Part], f: Filters, names: dict[str, str]) -> tuple[exp.Query, list[str]]:
    """The arms of ``parts`` as one query, and the attributes it carries (in column order)."""
    every = sorted({a for p in parts for a in p.attrs})
    types: dict[str, str] = {}
    for p in parts:
        for a in p.attrs:
            types.setdefault(a, p.offer.column_type(p.offer.mapping.attribute(a).column))
    arms = [_arm(i, p, every, types, f, names) for i, p in enumerate(parts)]
    query: exp.Query = arms[0]
    for arm in arms[1:]:
        query = exp.union(query, arm, distinct=False)
    return query, every


def page(parts: list[Part], f: Filters, names: dict[str, str], limit: int, offset: int,
         count: bool) -> tuple[str, list[str]]:
    """The SELECT of one page of entities, ordered by id (with ``_total``, the count of all
    that match, when ``count``), and the attributes it carries."""
    inner, every = union(parts, f, names)
    cols: list[exp.Expr] = [exp.Star()]
    if count:
        cols.append(exp.alias_(exp.Window(this=exp.Count(this=exp.Star())), "_total",
                               quoted=True))
    q = (exp.select(*cols).from_(inner.subquery("e"))
         .order_by(exp.column("id", quoted=True)).limit(limit))
    if offset:
        q = q.offset(offset)
    return q.sql(dialect="duckdb"), every


def count_only(parts: list[Part], f: Filters, names: dict[str, str]) -> str:
    """The SELECT that counts the entities that match."""
    inner, _ = union(parts, f, names)
    return exp.select(exp.alias_(exp.Count(this=exp.Star()), "n", quoted=True)).from_(
        inner.subquery("e")).sql(dialect="duckdb")
