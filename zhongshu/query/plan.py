"""From SQL text to an executable plan, with a cache of plans keyed by query *shape*.

Parsing, governing and transpiling a query costs about a millisecond; a point lookup on a
source costs microseconds. So literals compared with ``=``, ``<>``, ``<``, ``<=``, ``>``, ``>=``
become parameters of a template, and a plan is built once per template × caller × purpose.
Other literals (LIMIT, function arguments, type parameters) stay part of the template.

A plan picks its path:

* **native** — every dataset read lives on one source with its own SQL engine, and every
  function used means the same there: the whole governed query is transpiled with sqlglot to
  the source's dialect and run through its driver on a read-only connection;
* **duckdb** — everything else: the governed query runs on the locked-down DuckDB engine with
  the sources attached. A query over an aggregate dataset (``policy.aggregate``) always runs
  here: the hub wrote it for DuckDB's semantics (distinct counts over windows, clipping).

Both paths return the same columns with the same types (those DuckDB gives the query), so an
answer does not depend on the path; ``tests/query/test_differential.py`` keeps this honest.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.tokenizer_core import TokenType

from zhongshu.catalog.catalog import Dataset
from zhongshu.errors import SqlSyntax, StatementNotAllowed
from zhongshu.policy.firewall import DatasetRef, Governed, function_name
from zhongshu.policy.grants import Grant
from zhongshu.sources import NativeSQL, Source
from zhongshu.sources.base import type_family

_NONCE = secrets.token_hex(3)
_PARAM = f"zsp{_NONCE}_"
_COMPARE = {TokenType.EQ, TokenType.NEQ, TokenType.LT, TokenType.LTE, TokenType.GT,
            TokenType.GTE}
_TOKENIZER = sqlglot.Dialect.get_or_raise("duckdb").tokenizer_class()


@dataclass(frozen=True)
class Template:
    """A query with its comparison literals lifted out as parameters."""

    key: str
    text: str
    params: tuple[Any, ...]

    @property
    def parameters(self) -> frozenset[str]:
        """The placeholder names of ``text`` (``:NAME``): the ones policy must accept.

        >>> sorted(templatize("SELECT 1 WHERE 2 = 3 AND 4 < 5").parameters) == [
        ...     f"{_PARAM}0", f"{_PARAM}1"]
        True
        """
        return frozenset(f"{_PARAM}{i}" for i in range(len(self.params)))

    def values(self) -> dict[str, Any]:
        """Placeholder name → the caller's value it stands for."""
        return {f"{_PARAM}{i}": v for i, v in enumerate(self.params)}


def templatize(sql: str) -> Template:
    """Lift literals compared with a column out of ``sql``.

    >>> t = templatize("SELECT * FROM traffic.passages WHERE passage_id = 42 LIMIT 5")
    >>> u = templatize("SELECT * FROM traffic.passages WHERE passage_id = 7 LIMIT 5")
    >>> t.params, u.params, t.key == u.key
    ((42,), (7,), True)

    Raises:
        SqlSyntax: the text cannot be tokenized.
        StatementNotAllowed: the text carries its own parameters.
    """
    try:
        tokens = _TOKENIZER.tokenize(sql)
    except Exception:
        raise SqlSyntax("SQL syntax error: unterminated string, comment or quoted name") from None
    out: list[str] = []
    params: list[Any] = []
    pos = 0
    prev: TokenType | None = None
    for tok in tokens:
        if tok.token_type in (TokenType.PLACEHOLDER, TokenType.PARAMETER):
            raise StatementNotAllowed("query parameters are not accepted; write values inline")
        if prev in _COMPARE and tok.token_type in (TokenType.STRING, TokenType.NUMBER):
            value: Any = tok.text
            if tok.token_type == TokenType.NUMBER:
                value = _number(tok.text)
            out.append(sql[pos:tok.start])
            out.append(f":{_PARAM}{len(params)}")
            params.append(value)
            pos = tok.end + 1
        prev = tok.token_type
    out.append(sql[pos:])
    text = "".join(out)
    kinds = "".join("s" if isinstance(p, str) else "n" for p in params)
    return Template(key=f"{kinds}|{text}", text=text, params=tuple(params))


def _number(text: str) -> int | float | Decimal:
    try:
        return int(text)
    except ValueError:
        pass
    if "e" in text.lower():
        return float(text)
    return Decimal(text)


@dataclass
class Plan:
    """A governed query ready to run on either path."""

    governance: Governed = field(repr=False)
    sources: list[Source]
    duckdb_sql: str
    fetch_limit: int
    row_limit: int
    native: NativeSQL | None = None
    native_sql: str | None = None
    schema: pa.Schema | None = None
    timings: dict[str, float] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    runs: int = 0

    @property
    def datasets(self) -> dict[str, Dataset]:
        """Every dataset the query reads (row scopes' included), by name."""
        return self.governance.datasets

    @property
    def columns_read(self) -> dict[str, list[str]]:
        """Dataset → the columns the query reads of it."""
        return self.governance.columns_read

    @property
    def refs(self) -> tuple[DatasetRef, ...]:
        """The query's dataset references, with the access decided for each."""
        return self.governance.refs

    @property
    def row_scope(self) -> list[dict[str, str]]:
        """The row scopes that limit the rows, once per dataset and grant."""
        return self.governance.row_scopes

    @property
    def grants(self) -> list[Grant]:
        """The grants the query uses (each spent once per run)."""
        return self.governance.grants

    @property
    def governed(self) -> exp.Expr:
        """The governed query, before the planner's limit and relations."""
        return self.governance.expression

    # A query that takes longer than this on the source's own engine is also tried on DuckDB
    # (SQLite, for one, aggregates and joins several times slower than DuckDB scanning it).
    EXPLORE_AFTER_S = 0.02
    REPROBE_EVERY = 200

    def choose(self) -> str:
        """``native`` or ``duckdb``: the path measured faster for this plan so far.

        A plan that can be pushed down starts native; once a native run is slow the DuckDB
        path is measured too, and the faster one is kept (re-measuring the other every
        ``REPROBE_EVERY`` runs when the two were within 3×, since data and load change).
        """
        if self.native is None:
            return "duckdb"
        self.runs += 1
        native, duck = self.timings.get("native"), self.timings.get("duckdb")
        if native is None or self.samples.get("native", 0) < 2:
            return "native"
        if duck is None or self.samples.get("duckdb", 0) < 2:
            return "duckdb" if native > self.EXPLORE_AFTER_S else "native"
        best, other = ("native", "duckdb") if native <= duck else ("duckdb", "native")
        # re-measure the other path now and then, unless it was far slower (a full scan
        # behind a point lookup is not worth re-checking)
        close = max(native, duck) < 3 * min(native, duck)
        return other if close and self.runs % self.REPROBE_EVERY == 0 else best

    # a plan measured under this on its source's own engine may be answered inline
    QUICK_S = 0.0005

    def is_quick(self) -> bool:
        """Whether this plan runs natively and was measured under ``QUICK_S`` (twice at
        least, and no slower than DuckDB)."""
        native, duck = self.timings.get("native"), self.timings.get("duckdb")
        return (self.native is not None and native is not None and native < self.QUICK_S
                and self.samples.get("native", 0) >= 2 and (duck is None or native <= duck))

    def record(self, path: str, seconds: float) -> None:
        """Fold one measured run into the path's moving average.

        The first run on a path warms it up (opens connections, reads remote catalogs), so the
        second replaces it rather than being averaged with it.
        """
        n = self.samples.get(path, 0) + 1
        self.samples[path] = n
        old = self.timings.get(path)
        self.timings[path] = seconds if old is None or n == 2 else 0.7 * old + 0.3 * seconds


def parameter_index(name: str) -> int:
    """The position in ``Template.params`` of the placeholder called ``name``.

    >>> parameter_index(f"{_PARAM}3")
    3
    """
    return int(name[len(_PARAM):])


_index = parameter_index


def build_plan(template: Template, governed: Governed, row_cap: int, limit: int | None
               ) -> Plan:
    """Prepare the governed query of ``template`` for both paths.

    Args:
        governed: what policy made of ``template.text`` (``firewall.govern``, told to accept
            ``template.parameters``).
        row_cap: the hub's row cap; ``limit``: the request's own smaller cap, if any.
    """
    row_limit = min(row_cap, limit) if limit else row_cap
    fetch = row_limit + 1
    limited = _with_limit(governed.expression, fetch)
    sources = sorted({d.source.name: d.source for d in governed.datasets.values()}.values(),
                     key=lambda s: s.name)
    duck = _substitute(limited, governed, native=False)
    duck = duck.transform(lambda n: exp.var(f"${_index(n.name) + 1}")
                          if isinstance(n, exp.Placeholder) else n)
    plan = Plan(governance=governed, sources=sources, duckdb_sql=duck.sql("duckdb"),
                fetch_limit=fetch, row_limit=row_limit)
    src = sources[0] if len(sources) == 1 and not governed.aggregate else None
    if isinstance(src, NativeSQL) and _portable(limited, governed, src):
        native = _substitute(_flatten(limited, governed), governed, native=True)
        for o in native.find_all(exp.Ordered):
            if o.args.get("nulls_first") is None:
                o.set("nulls_first", False)  # DuckDB's default: NULLS LAST, both directions
        native = native.transform(lambda n: exp.var(src.placeholder(_index(n.name)))
                                  if isinstance(n, exp.Placeholder) else n)
        try:
            plan.native_sql = native.sql(src.dialect, unsupported_level=sqlglot.ErrorLevel.RAISE)
            plan.native = src
        except sqlglot.errors.UnsupportedError:
            plan.native_sql = None
    return plan


def _with_limit(e: exp.Expr, fetch: int) -> exp.Expr:
    e = e.copy()
    if isinstance(e, exp.Select):
        current = e.args.get("limit")
        if current is None:
            return e.limit(fetch, copy=False)
        value = current.expression
        if isinstance(value, exp.Literal) and value.is_int and int(value.this) <= fetch:
            return e
        if isinstance(value, exp.Literal) and value.is_int:
            return e.limit(fetch, copy=False)
    return exp.select("*").from_(exp.Subquery(this=e, alias=exp.TableAlias(
        this=exp.to_identifier("_q")))).limit(fetch)


def _flatten(e: exp.Expr, governed: Governed) -> exp.Expr:
    """For the source's own engine: merge each governed view with its dataset's definition
    (``SELECT masks FROM (SELECT exprs FROM table)`` → ``SELECT masks(exprs) FROM table``).

    The merged expressions read the source table under the marker's name (or the alias a
    row scope gave it), qualified with it: like every column of a governed view, they bind
    to the view's own relation, never to one of the caller's.

    One derived table less matters: measured on MariaDB 10.11, each nesting level costs ~5%
    of a full scan even though the optimizer merges it.
    """
    e = e.copy()
    for select in list(e.find_all(exp.Select)):
        frm = select.args.get("from_")
        if frm is None or select.args.get("joins") or not isinstance(frm.this, exp.Table):
            continue
        table = frm.this
        ds = governed.raw_dataset(table)
        if ds is None or table.args.get("db") or not ds.config.table:
            continue
        name = table.alias_or_name
        exprs = {c.name: _qualified(ds.column_expr(c), name) for c in ds.columns}
        for col in list(select.find_all(exp.Column)):
            if col.find_ancestor(exp.Select) is not select or col.table not in ("", name):
                continue
            new = exprs.get(col.name.lower())
            if new is None:
                continue
            if col.parent is select and col.arg_key == "expressions":
                col.replace(exp.alias_(new.copy(), col.name, quoted=True))
            else:
                col.replace(new.copy())
        assert isinstance(ds.source, NativeSQL)  # flattened only for a pushdown
        rel = ds.source.native_relation(ds.config.table)
        rel.set("alias", exp.TableAlias(this=exp.to_identifier(name)))
        table.replace(rel)
    return e


def _qualified(e: exp.Expr, table: str) -> exp.Expr:
    """``e`` (a dataset column's expression over its source table) with its own columns
    qualified with ``table``; columns of subqueries inside it are left to those."""
    for col in list(e.find_all(exp.Column)):
        if not col.table and col.find_ancestor(exp.Select) is None:
            col.set("table", exp.to_identifier(table))
    return e


def _substitute(e: exp.Expr, governed: Governed, native: bool) -> exp.Expr:
    """Each raw marker table of ``e`` replaced by its dataset's relation over the source,
    under the marker's name (or the alias a row scope gave it): the name the view's columns
    are qualified with."""
    def swap(node: exp.Expr) -> exp.Expr:
        ds = governed.raw_dataset(node)
        if ds is None:
            return node
        assert isinstance(node, exp.Table)
        return exp.Subquery(this=ds.relation(native=native), alias=exp.TableAlias(
            this=exp.to_identifier(node.alias_or_name)))

    return e.copy().transform(swap)


# Functions that mean the same in DuckDB, PostgreSQL, MySQL/MariaDB and SQLite (as sqlglot
# transpiles them). Anything else runs on DuckDB.
_PORTABLE = frozenset({"count", "sum", "min", "max", "avg", "coalesce", "nullif", "abs",
                       "lower", "upper", "replace", "cast"})
_PREDICATES = (exp.Where, exp.Having, exp.Join)


def _portable_nodes(e: exp.Expr, src: NativeSQL, strict: bool) -> bool:
    for node in e.walk():
        if isinstance(node, (exp.Cast, exp.TryCast)):
            to_text = type_family(node.to.sql("duckdb")) == "text"
            if strict and src.dialect == "mysql" or strict and src.dialect == "sqlite" and \
                    not to_text:
                return False  # SQLite and MySQL cast 'cam-1' to 0 where DuckDB refuses
            if src.dialect == "sqlite" and type_family(node.to.sql("duckdb")) in ("time",
                                                                                   "date"):
                return False
        elif (name := function_name(node)) is not None:
            if name not in _PORTABLE and node.key not in _PORTABLE and \
                    name not in src.functions:
                return False
        if isinstance(node, (exp.Like, exp.ILike, exp.RegexpLike, exp.SimilarTo)) and \
                src.dialect in ("mysql", "sqlite"):
            return False  # case and collation rules differ from DuckDB's
        if isinstance(node, (exp.Div, exp.IntDiv, exp.Mod)):
            return False  # integer / decimal division semantics differ between engines
    return True


def _portable(e: exp.Expr, governed: Governed, src: NativeSQL) -> bool:
    # the caller's query and the governance around it must mean exactly the same there
    if not _portable_nodes(e, src, strict=True):
        return False
    # dataset definitions were written by their owners for their own engine: a cast of a
    # SQLite 0/1 column to BOOLEAN is the point, not a risk
    datasets = governed.datasets
    for d in datasets.values():
        if not _portable_nodes(d.relation(native=True), src, strict=False):
            return False
    if src.dialect == "sqlite":
        # SQLite keeps times and booleans as text and integers: comparing them is not the same
        typed = {c.name for d in datasets.values() for c in d.columns
                 if type_family(c.type) in ("time", "date", "bool")}
        for pred in e.find_all(*_PREDICATES):
            if any(c.name in typed for c in pred.find_all(exp.Column)):
                return False
    return True
