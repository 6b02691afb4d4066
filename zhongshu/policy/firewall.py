"""The SQL firewall and rewriter: a pipeline of small rules over the sqlglot expression.

Each rule is ``rule(expression, ctx) -> expression`` and either returns the (possibly
rewritten) expression or raises a protocol error. ``govern`` runs ``RULES`` in order:

1. ``one_select``            exactly one statement, and it is a SELECT (or WITH … SELECT, UNION…)
2. ``no_forbidden_nodes``    no DDL/DML/commands/INTO/locking/recursion anywhere inside
3. ``allowed_functions``     scalar, aggregate and window functions from an allow-list only
4. ``resolve_datasets``      every table reference is a dataset (or a CTE); nothing else
5. ``authorize_columns``     every dataset granted for the purpose; every column used readable
6. ``pseudonym_lookups``     equality with a literal on a pseudonymised column compares
                             pseudonyms; ranges and patterns on it are refused
7. ``aggregate_only``        aggregate-only columns only inside count/sum/avg/… over ≥ k rows
8. ``governed_views``        each dataset reference becomes a subquery over the raw dataset
                             relation exposing the columns read, masked, within the row scope

The output names raw relations as ``__raw__<namespace>__<name>``; the query layer swaps them
for the source relation of the path it chooses (DuckDB or the source's own engine).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.qualify import qualify

from zhongshu.catalog.catalog import Catalog, Dataset
from zhongshu.errors import (
    ColumnNotFound,
    ColumnNotGranted,
    DatasetNotFound,
    DatasetUnavailable,
    FunctionNotAllowed,
    SourceUnavailable,
    SqlSyntax,
    StatementNotAllowed,
)
from zhongshu.policy.grants import Access, Grants
from zhongshu.policy.identity import Caller
from zhongshu.policy.masking import key_id, mask_expr

RAW_PREFIX = "__raw__"
_REF = "zhongshu_ref"  # meta key: index of a table node's DatasetRef
# sqlglot logs unparsed statements at WARNING, with the caller's SQL: keep that out of logs
logging.getLogger("sqlglot").setLevel(logging.ERROR)
_QUERY_STARTS = {"SELECT", "WITH", "FROM", "(", "VALUES", "TABLE"}


@dataclass
class DatasetRef:
    """One reference to a dataset in the query (a dataset may be referenced several times)."""

    dataset: Dataset
    alias: str
    columns: set[str] = field(default_factory=set)
    access: Access | None = None


@dataclass
class Context:
    """What the rules know: who asks, for what, and what they found."""

    caller: Caller
    purpose: str
    catalog: Catalog
    grants: Grants
    refs: list[DatasetRef] = field(default_factory=list)
    ctes: set[str] = field(default_factory=set)
    scoped_through: dict[str, Dataset] = field(default_factory=dict)

    def datasets(self) -> dict[str, Dataset]:
        """The datasets the query reads, by name (row scopes' datasets included)."""
        out = {r.dataset.name: r.dataset for r in self.refs}
        out.update(self.scoped_through)
        return out

    def row_scopes(self) -> list[dict[str, str]]:
        """The row scopes that limit this query's rows, once per dataset and grant."""
        seen: dict[tuple[str, str], dict[str, str]] = {}
        for r in self.refs:
            a = r.access
            if a is not None and a.row_scope and a.grant is not None:
                seen[(r.dataset.name, a.grant.id)] = {"dataset": r.dataset.name,
                                                      "grant": a.grant.id,
                                                      "scope": a.row_scope}
        return list(seen.values())

    def columns_read(self) -> dict[str, list[str]]:
        """Dataset → columns the query reads (explicitly or through ``*``)."""
        out: dict[str, set[str]] = {}
        for r in self.refs:
            out.setdefault(r.dataset.name, set()).update(r.columns)
        return {k: sorted(v) for k, v in out.items()}


Rule = Callable[[exp.Expression, Context], exp.Expression]

_SET_OPS = (exp.Union, exp.Intersect, exp.Except)
_FORBIDDEN = (exp.Insert, exp.Update, exp.Delete, exp.Create, exp.Drop, exp.Alter, exp.Command,
              exp.Copy, exp.Set, exp.Pragma, exp.Use, exp.Transaction, exp.Commit,
              exp.Rollback, exp.Describe, exp.Into, exp.Lock, exp.Merge, exp.TruncateTable,
              exp.Attach, exp.Detach, exp.Install, exp.LoadData, exp.Analyze, exp.Kill,
              exp.Cache, exp.Uncache, exp.Refresh, exp.Summarize)


TOO_DEEP = "the query is nested too deeply; flatten its expressions or subqueries"


def parse(sql: str) -> exp.Expression:
    """Parse one statement of DuckDB SQL.

    Raises:
        SqlSyntax: the text does not parse (the message points at the position).
        StatementNotAllowed: more than one statement.
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
    except RecursionError:
        raise SqlSyntax(TOO_DEEP) from None
    if not statements:
        raise SqlSyntax("empty query: send one SELECT statement")
    if len(statements) > 1:
        raise StatementNotAllowed("send exactly one statement (found "
                                  f"{len(statements)}); only SELECT is accepted")
    return statements[0]


def _first_word(sql: str) -> str:
    text = re.sub(r"(--[^\n]*\n?|/\*.*?\*/|\s)+", " ", sql, flags=re.S).strip()
    m = re.match(r"\(|[A-Za-z_]+", text)
    return m.group(0).upper() if m else ""


def one_select(e: exp.Expression, ctx: Context) -> exp.Expression:
    """Only SELECT, WITH … SELECT and set operations of SELECTs."""
    if not isinstance(e, (exp.Select, *_SET_OPS)):
        if not isinstance(e, (exp.Command, *_FORBIDDEN)):
            raise StatementNotAllowed("this is not a query: send one SELECT statement over "
                                      "datasets")
        kind = e.key.upper() if not isinstance(e, exp.Command) else str(e.this).upper()
        raise StatementNotAllowed(f"{kind} statements are not allowed; only SELECT is accepted "
                                  "(the hub never changes a source)")
    return e


def no_forbidden_nodes(e: exp.Expression, ctx: Context) -> exp.Expression:
    """No statement, INTO, locking clause or recursive CTE nested anywhere."""
    for node in e.walk():
        if isinstance(node, _FORBIDDEN):
            raise StatementNotAllowed(f"{node.key.upper()} is not allowed inside a query; only "
                                      "SELECT is accepted")
        if isinstance(node, exp.With) and node.args.get("recursive"):
            raise StatementNotAllowed("recursive queries are not allowed")
        if isinstance(node, exp.Placeholder) and not node.meta.get("zhongshu"):
            raise StatementNotAllowed("query parameters are not accepted; write values inline")
        if isinstance(node, exp.Parameter):
            raise StatementNotAllowed("query parameters are not accepted; write values inline")
    return e


# Functions a query may call, by the name DuckDB knows them under. Nothing that reads files,
# settings, secrets, extensions, the environment or the catalog of the engine.
ALLOWED_FUNCTIONS = frozenset("""
count sum avg min max median mode stddev stddev_samp stddev_pop variance var_samp var_pop
quantile quantile_cont quantile_disc approx_count_distinct approx_quantile string_agg
group_concat list array_agg bool_and bool_or bit_and bit_or first last any_value arg_min
arg_max argmin argmax count_if countif corr covar_pop covar_samp regr_slope regr_intercept
row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value
nth_value
abs ceil ceiling floor round trunc sign sqrt pow power exp ln log log2 log10 mod greatest
least pi degrees radians sin cos tan asin acos atan atan2 cot
coalesce nullif ifnull if iif
lower upper length len char_length strlen concat concat_ws substr substring left right
trim ltrim rtrim lpad rpad replace reverse position strpos instr contains
starts_with ends_with prefix suffix split_part regexp_matches regexp_replace
regexp_extract lcase ucase md5 sha256 hash format printf ascii chr unicode
like_escape ilike_escape
date_trunc datetrunc date_part datepart extract year month day hour minute second week
dayofweek dayofyear isodow quarter epoch epoch_ms strftime strptime make_date make_time
make_timestamp date_diff datediff date_sub date_add age time_bucket last_day
monthname dayname to_timestamp current_date today
try_cast struct_pack list_value unnest
haversine
""".split())

# Typed sqlglot nodes that are syntax rather than callable functions.
_STRUCTURAL = frozenset({"cast", "trycast", "case", "if", "coalesce", "extract"})


def is_call(node: exp.Expression) -> bool:
    """Whether ``node`` is a function call (sqlglot also models AND, OR, … as functions)."""
    return isinstance(node, exp.Func) and not isinstance(
        node, (exp.Connector, exp.Binary, exp.Predicate, exp.Unary, exp.Case, exp.Cast,
               exp.TryCast, exp.If, exp.Coalesce))


_CALL = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(")


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    return node.sql_name().lower()


def allowed_functions(e: exp.Expression, ctx: Context) -> exp.Expression:
    """Every function called is on the allow-list."""
    for node in e.walk():
        if not is_call(node):
            continue
        name = _function_name(node)
        if name in ALLOWED_FUNCTIONS or name.replace("_", "") in ALLOWED_FUNCTIONS:
            continue
        if not isinstance(node, exp.Anonymous):
            if node.key in _STRUCTURAL:
                continue
            # what DuckDB will actually be asked to call, e.g. TIMESTAMP_TRUNC → DATE_TRUNC
            m = _CALL.match(node.sql("duckdb"))
            if m is None or m.group(1).lower() in ALLOWED_FUNCTIONS:
                continue
        raise FunctionNotAllowed(f"function `{name}` is not allowed in hub queries; "
                                 "see docs/query.md for the functions you can use")
    return e


def resolve_datasets(e: exp.Expression, ctx: Context) -> exp.Expression:
    """Every table reference names a dataset the caller may know, or a CTE of the query."""
    ctx.ctes = {str(c.alias).lower() for c in e.find_all(exp.CTE)}
    for ident in e.find_all(exp.Identifier):
        if ident.name.lower().startswith(RAW_PREFIX):
            raise StatementNotAllowed(f"names starting with `{RAW_PREFIX}` are reserved by "
                                      "the hub")
    for table in list(e.find_all(exp.Table)):
        if not isinstance(table.this, exp.Identifier):
            raise FunctionNotAllowed("table functions are not allowed; name a dataset "
                                     "(`namespace.name`)")
        parts = [p.name for p in (table.args.get("catalog"), table.args.get("db"), table.this)
                 if p is not None]
        name = ".".join(parts).lower()
        if len(parts) == 1 and name in ctx.ctes:
            continue
        if len(parts) != 2:
            raise DatasetNotFound(f"no dataset `{name}`; datasets are named `namespace.name`, "
                                  "see `GET /v1/catalog`")
        ds = ctx.catalog.dataset(name)
        if ds is None or not ctx.grants.visible(ctx.caller, ds):
            raise DatasetNotFound(f"no dataset `{name}`; `GET /v1/catalog` lists the datasets "
                                  "you can use")
        if ds.status == "drift":
            raise DatasetUnavailable(f"dataset `{ds.name}` is unavailable: its source schema "
                                     "changed; the owner has been told")
        if ds.status == "source_down":
            raise SourceUnavailable(f"dataset `{ds.name}` is unavailable: its source is down")
        table.meta[_REF] = len(ctx.refs)
        ctx.refs.append(DatasetRef(ds, (table.alias or table.name).lower()))
    return e


def _qualify_schema(ctx: Context) -> dict[str, dict[str, dict[str, str]]]:
    """Each referenced dataset with the columns the caller may read of it."""
    schema: dict[str, dict[str, dict[str, str]]] = {}
    for ref in ctx.refs:
        assert ref.access is not None
        ns, name = ref.dataset.name.split(".")
        schema.setdefault(ns, {})[name] = {c.name: c.type for c in ref.dataset.columns
                                           if c.name in ref.access.columns}
    return schema


_UNRESOLVED = re.compile(r"[Cc]olumn '([^']+)'|[Uu]nknown column: '?([A-Za-z0-9_]+)")


def authorize_columns(e: exp.Expression, ctx: Context) -> exp.Expression:
    """Decide each dataset's access, then resolve every column (``*`` included) against the
    readable columns only: a declared but ungranted column is ``column_not_granted``."""
    for ref in ctx.refs:
        ref.access = ctx.grants.decide(ctx.caller, ref.dataset, ctx.purpose)
    if not ctx.refs:
        return e
    try:
        q = qualify(e.copy(), schema=_qualify_schema(ctx), dialect="duckdb",
                    expand_stars=True, validate_qualify_columns=True,
                    quote_identifiers=False, identify=False)
    except OptimizeError as err:
        m = _UNRESOLVED.search(str(err))
        missing = next((g for g in m.groups() if g), "").lower() if m else ""
        for ref in ctx.refs:
            if missing and ref.dataset.column(missing):
                raise ColumnNotGranted(
                    f"column `{missing}` of `{ref.dataset.name}` is not granted to "
                    f"`{ctx.caller.name}` for purpose `{ctx.purpose}`") from None
        raise ColumnNotFound(f"{_column_message(str(err))}; `GET /v1/datasets/NAME` lists a "
                             "dataset's columns") from None
    # The same alias may name tables in different scopes (`… WHERE camera_id IN (SELECT
    # camera_id FROM traffic.checkpoints)`): a column counts for every reference under its
    # alias that has it — conservative, it can only ask for more columns, never fewer.
    by_alias: dict[str, list[DatasetRef]] = {}
    for r in ctx.refs:
        by_alias.setdefault(r.alias, []).append(r)
    for scope_col in q.find_all(exp.Column):
        for ref in by_alias.get(scope_col.table.lower(), []) if scope_col.table else []:
            if ref.dataset.column(scope_col.name):
                ref.columns.add(scope_col.name.lower())
    return e


_RANGE = (exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.ILike, exp.Between, exp.RegexpLike,
          exp.SimilarTo, exp.Glob)


def _resolve(col: exp.Column, ctx: Context) -> DatasetRef | None:
    """The dataset reference a column reads directly from, if unambiguous in its scope."""
    select = col.find_ancestor(exp.Select)
    if select is None:
        return None
    candidates: list[DatasetRef] = []
    for table in select.find_all(exp.Table):
        if _REF not in table.meta or table.find_ancestor(exp.Select) is not select:
            continue
        ref = ctx.refs[table.meta[_REF]]
        if col.table and col.table.lower() != ref.alias:
            continue
        if ref.dataset.column(col.name):
            candidates.append(ref)
    return candidates[0] if len(candidates) == 1 else None


def _pseudonymized(col: exp.Column, ctx: Context) -> tuple[DatasetRef, str] | None:
    ref = _resolve(col, ctx)
    if ref is None or ref.access is None:
        return None
    mask = ref.access.masking.get(col.name.lower())
    if mask is None or mask.kind != "pseudonym":
        return None
    return ref, key_id(ctx.caller.name, ctx.purpose, mask.rotate)


def pseudonym_lookups(e: exp.Expression, ctx: Context) -> exp.Expression:
    """``plate = '浙A12345'`` on a pseudonymised column compares pseudonyms; ranges, patterns
    and other operators on such a column are refused (identifiers are never scanned)."""
    for node in list(e.find_all(exp.EQ, exp.NEQ, exp.In, *_RANGE)):
        cols = [c for c in (node.this, node.args.get("expression")) if isinstance(c, exp.Column)]
        for col in cols:
            found = _pseudonymized(col, ctx)
            if found is None:
                continue
            ref, kid = found
            if isinstance(node, _RANGE):
                raise ColumnNotGranted(
                    f"column `{col.name}` of `{ref.dataset.name}` is granted to "
                    f"`{ctx.caller.name}` as a pseudonym: compare it only for equality with a "
                    "value you already hold")
            others = node.expressions if isinstance(node, exp.In) else [
                node.expression if node.this is col else node.this]
            for other in others:
                if isinstance(other, (exp.Literal, exp.Placeholder)):
                    other.replace(exp.func("zs_pseudonym", exp.Literal.string(kid),
                                           exp.cast(other.copy(), "VARCHAR")))
    return e


def _column_message(msg: str) -> str:
    msg = msg.split("\n")[0].strip()
    if "could not be resolved" in msg or "Unknown column" in msg:
        return "unknown column: " + msg.replace("Column ", "").replace(" could not be resolved",
                                                                       "")
    return "cannot resolve the query's columns: " + msg


RAW_META = "zhongshu_raw"  # meta key of the marker tables the rewriter itself creates


def raw_table(dataset: Dataset) -> exp.Table:
    """The marker table the query layer replaces by the dataset's source relation (marked in
    its meta, so that no name a caller writes can ever be taken for it)."""
    ns, name = dataset.name.split(".")
    table = exp.table_(f"{RAW_PREFIX}{ns}__{name}")
    table.meta[RAW_META] = dataset.name
    return table


def governed_views(e: exp.Expression, ctx: Context) -> exp.Expression:
    """Replace each dataset reference by a subquery exposing only the readable columns."""
    def swap(node: exp.Expression) -> exp.Expression:
        if not isinstance(node, exp.Table) or _REF not in node.meta:
            return node
        ref = ctx.refs[node.meta[_REF]]
        alias = ref.alias
        view = _view(ref, ctx)
        sub = exp.Subquery(this=view, alias=exp.TableAlias(this=exp.to_identifier(alias)))
        if node.args.get("alias") and node.args["alias"].args.get("columns"):
            sub.args["alias"].set("columns", node.args["alias"].args["columns"])
        return sub

    out = e.transform(swap)
    # `traffic.passages.plate` → `passages.plate`: the dataset's namespace is not a relation
    for col in out.find_all(exp.Column):
        if col.args.get("db") is not None:
            col.set("db", None)
            col.set("catalog", None)
    return out


_AGGREGATES = (exp.Count, exp.Sum, exp.Avg, exp.Stddev, exp.StddevPop, exp.StddevSamp,
               exp.Variance, exp.VariancePop)


def aggregate_only(e: exp.Expression, ctx: Context) -> exp.Expression:
    """Columns granted ``aggregate_only`` appear only inside count/sum/avg/stddev/variance
    (no window), and every SELECT aggregating them keeps only groups of at least k rows."""
    limited: dict[str, int] = {}
    for r in ctx.refs:
        for col, m in (r.access.masking.items() if r.access else ()):
            if m.kind == "aggregate_only":
                limited[col] = max(limited.get(col, 0), m.k)
    if not limited:
        return e
    selects: dict[int, tuple[exp.Select, int]] = {}
    for col in list(e.find_all(exp.Column)):
        name = col.name.lower()
        if name not in limited:
            continue
        ref = _resolve(col, ctx)
        if ref is not None and (ref.access is None or name not in ref.access.masking
                                or ref.access.masking[name].kind != "aggregate_only"):
            continue  # a same-named column of another dataset
        agg = col.find_ancestor(*_AGGREGATES)
        select = col.find_ancestor(exp.Select)
        if agg is None or agg.find_ancestor(exp.Select) is not select or \
                col.find_ancestor(exp.Window) is not None:
            raise ColumnNotGranted(
                f"column `{name}` is granted to `{ctx.caller.name}` for aggregates only: use "
                "it inside count, sum, avg, stddev or variance, over groups of at least "
                f"{limited[name]} rows")
        assert select is not None
        k = max(selects.get(id(select), (select, 0))[1], limited[name])
        selects[id(select)] = (select, k)
    for select, k in selects.values():
        floor = exp.GTE(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(k))
        having = select.args.get("having")
        select.set("having", exp.Having(this=exp.and_(having.this, floor) if having else floor))
    return e


def _view(ref: DatasetRef, ctx: Context) -> exp.Select:
    """``SELECT <masked granted columns> FROM <raw dataset> WHERE <row scope>``.

    Only the columns the query reads are exposed (``*`` was expanded to the granted ones): an
    unused masked column costs nothing, and keeps a query eligible for pushdown.
    """
    a = ref.access
    assert a is not None
    cols = []
    used = [c for c in a.columns if c in ref.columns] or list(a.columns[:1])
    for name in used:
        column = exp.column(name, quoted=True)
        mask = a.masking.get(name)
        if mask is None:
            cols.append(column)
            continue
        declared = ref.dataset.column(name)
        assert declared is not None
        masked = mask_expr(column, mask, declared.type,
                           key_id(ctx.caller.name, ctx.purpose, mask.rotate))
        cols.append(exp.alias_(masked, name, quoted=True))
    view = exp.select(*cols).from_(raw_table(ref.dataset))
    if a.row_scope:
        view = view.where(_scope(a.row_scope, ctx), copy=False)
    return view


def _scope(predicate: str, ctx: Context) -> exp.Expression:
    """A grant's row scope over the raw dataset; datasets it references are read raw (the
    owner wrote the predicate; its subqueries filter, they are never shown)."""
    e = sqlglot.parse_one(predicate, read="duckdb")
    for table in list(e.find_all(exp.Table)):
        name = f"{table.db}.{table.name}".lower()
        ds = ctx.catalog.dataset(name)
        if ds is None:
            raise DatasetNotFound(f"the row scope of a grant names `{name}`, which does not "
                                  "exist; the grant's owner must fix it")
        ctx.scoped_through[ds.name] = ds
        raw = raw_table(ds)
        raw.set("alias", table.args.get("alias"))
        table.replace(raw)
    return e


RULES: tuple[Rule, ...] = (one_select, no_forbidden_nodes, allowed_functions, resolve_datasets,
                           authorize_columns, pseudonym_lookups, aggregate_only, governed_views)


def govern(e: exp.Expression, ctx: Context, rules: tuple[Rule, ...] = RULES) -> exp.Expression:
    """Run the rules in order and return the governed expression."""
    for rule in rules:
        e = rule(e, ctx)
    return e
