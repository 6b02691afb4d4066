"""Aggregate datasets: what a caller may ask of a dataset granted with an ``aggregate_only``
column, and the SQL the hub writes for it.

Under such a grant the dataset is, for that caller, an *aggregate dataset*. The caller's query
is never rewritten: it is *parsed* into an ``AggregateRequest`` of one shape::

    SELECT <dimension | agg(measure) | count(*)>, ...
    FROM <the dataset> [AS alias]
    [WHERE <dimension> {= | <> | IN | NOT IN} <literals> [AND ...]]
    [GROUP BY <dimension>, ...]  [ORDER BY <output>, ...]  [LIMIT n [OFFSET m]]

— *dimensions* are the grant's ``dimensions`` (low-cardinality columns by the owner's choice),
*measures* its ``aggregate_only`` columns, bare; ``agg`` is ``count``, ``sum`` or ``avg`` (the
last two only for a numeric measure with a declared ``clip``) — and anything else is refused:
joins, subqueries, CTEs, set operations, DISTINCT, HAVING, QUALIFY, windows, expressions,
casts, CASE, and every aggregate that returns one row's value by construction (``min``,
``max``, ``arg_max``, ``any_value``, ``first``, ``list``, ``string_agg``, ``mode``,
quantiles, ``histogram``, ``approx_*``…).

From the request the hub writes the whole query itself (``aggregate_sql``):

* the governed view of the dataset (masks, row scope) with every dimension of the grant and
  the subject column (``subject``; by default each row is its own subject);
* rows without a subject are left out; each measure is read as ``DOUBLE`` and clipped to the
  mask's ``[lo, hi]`` (so one row moves a sum by at most ``max(|lo|, |hi|)``, and no sum can
  overflow: the bounds are at most ``CLIP_MAX``);
* **cells**: the rows of every combination of *all* the grant's dimensions (the finest
  partition the grant allows) with fewer than ``k`` distinct subjects are left out *before*
  anything is filtered or grouped; then the caller's filters (equality on dimensions: each
  keeps or drops whole cells), then the groups, of which only those with at least ``k``
  distinct subjects are answered.

So every number answered is a sum over whole cells of at least ``k`` subjects, and so is the
difference of any two answers: see ``docs/security.md`` (aggregate datasets) for exactly what
this does and does not guarantee.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from zhongshu.config.grants import CLIP_MAX
from zhongshu.errors import ColumnNotGranted, FunctionNotAllowed, StatementNotAllowed
from zhongshu.policy.context import REF, Context, DatasetRef
from zhongshu.policy.relations import RAW_PREFIX
from zhongshu.sources.base import type_family

AGGREGATES = ("count", "sum", "avg")
"""The aggregates an aggregate dataset answers (every other one is refused)."""
VIEW = f"{RAW_PREFIX}agg_view"
CELLS = f"{RAW_PREFIX}agg_cells"
SUBJECT = f"{RAW_PREFIX}subject"
CELL_SIZE = f"{RAW_PREFIX}cell_size"
_NUMERIC = ("int", "float")
_OPS = (exp.EQ, exp.NEQ, exp.In)
_VALUE = (exp.Literal, exp.Placeholder)
_CLAUSES = frozenset({"expressions", "from_", "where", "group", "order", "limit", "offset"})
# every other clause of a SELECT (HAVING, QUALIFY, WINDOW, DISTINCT, joins, WITH, sampling…)
# is refused: an allow-list, so a clause sqlglot learns later is refused too
_ANY = "any value (min, max, arg_max, any_value, first, list, string_agg, mode, quantiles…)"


@dataclass(frozen=True)
class Output:
    """One column of the answer: a dimension, or an aggregate of a measure (or of rows)."""

    alias: str
    dimension: str | None = None
    aggregate: str | None = None  # count, sum or avg
    measure: str | None = None  # None: count(*)


@dataclass(frozen=True)
class Filter:
    """``dimension op values``: ``=``/``IN`` keep the cells with one of the values, ``<>``/
    ``NOT IN`` drop them (values are literals, or parameters the query layer lifted)."""

    dimension: str
    keep: bool
    values: tuple[exp.Expr, ...]


@dataclass(frozen=True)
class AggregateRequest:
    """What the caller asked of an aggregate dataset, parsed (never its SQL)."""

    ref: DatasetRef
    outputs: tuple[Output, ...]
    group: tuple[str, ...]
    filters: tuple[Filter, ...]
    order: tuple[tuple[int, bool], ...]  # (1-based output position, descending)
    limit: int | None
    offset: int | None
    index: int  # of ``ref`` in the context's references


def is_aggregate(ref: DatasetRef) -> bool:
    """Whether ``ref`` reads an aggregate dataset (a grant with an aggregate-only column)."""
    a = ref.access
    return a is not None and a.grant is not None and any(
        m.kind == "aggregate_only" for m in a.masking.values())


def _k(ref: DatasetRef) -> int:
    """The group-size threshold: the largest ``k`` of the masks applied."""
    assert ref.access is not None
    return max(m.k for m in ref.access.masking.values() if m.kind == "aggregate_only")


def parse_request(e: exp.Expr, ctx: Context, ref: DatasetRef) -> AggregateRequest:
    """The caller's query ``e`` over the aggregate dataset of ``ref`` as a request.

    Raises:
        StatementNotAllowed: the query is not of the one shape (module docstring).
        FunctionNotAllowed: an aggregate other than count, sum and avg.
        ColumnNotGranted: a column that is no dimension used as one, a measure used
            outside an allowed aggregate, or sum/avg of a measure without a clip.
    """
    name = ref.dataset.name
    if not isinstance(e, exp.Select):
        raise _shape(name, "one SELECT (no UNION, WITH or subquery)")
    for key, value in e.args.items():
        if value and key not in _CLAUSES:
            what = key.rstrip("_").upper().replace("WITH", "WITH (CTE)")
            raise _shape(name, f"no {what}")
    frm = e.args.get("from_")
    if frm is None or not isinstance(frm.this, exp.Table) or ctx.ref_of(frm.this) is not ref:
        raise _shape(name, "FROM the dataset itself")
    extra = [k for k, v in frm.this.args.items() if v and k not in ("this", "db", "catalog",
                                                                    "alias")]
    if extra or frm.this.args.get("alias") is not None and frm.this.args["alias"].columns:
        raise _shape(name, "FROM the dataset itself (no sample, hint, time travel or "
                           "column aliases)")
    if any(isinstance(n, (exp.Query, exp.Subquery)) for n in e.find_all(exp.Query,
                                                                      exp.Subquery)
           if n is not e):
        raise _shape(name, "no subquery")
    if any(e.find_all(exp.Window)):
        raise _shape(name, "no window function")
    outputs = tuple(_output(x, i, ctx, ref) for i, x in enumerate(e.expressions))
    aliases = [o.alias for o in outputs]
    if len(set(aliases)) != len(aliases):
        raise _shape(name, "every output named once (give each an alias)")
    group = _group(e, outputs, ctx, ref)
    dims_out = [o.dimension for o in outputs if o.dimension]
    if set(dims_out) != set(group):
        raise _shape(name, "GROUP BY exactly the dimensions it selects")
    return AggregateRequest(ref=ref, outputs=outputs, group=group,
                            filters=_filters(e, ctx, ref), order=_order(e, outputs, ctx, ref),
                            limit=_int(e, "limit", name), offset=_int(e, "offset", name),
                            index=frm.this.meta[REF])


def _shape(dataset: str, what: str) -> StatementNotAllowed:
    return StatementNotAllowed(
        f"`{dataset}` is an aggregate dataset for you: ask `SELECT <dimensions>, count(*), "
        f"sum(<measure>), avg(<measure>) FROM {dataset} [WHERE <dimension> = <value> …] "
        f"GROUP BY <dimensions>`, with {what}; post-process the answer on your side")


def _column(node: exp.Expr, ref: DatasetRef) -> str | None:
    """The dataset column ``node`` names (bare, or qualified by the reference's alias or the
    dataset's name), or None if ``node`` is no such column."""
    if not isinstance(node, exp.Column) or not isinstance(node.this, exp.Identifier):
        return None
    table = node.table.lower() if node.table else ""
    ns, short = ref.dataset.name.split(".")
    if table and table not in (ref.alias, short) or \
            node.args.get("db") is not None and node.db.lower() != ns:
        return None
    col = ref.dataset.column(node.name)
    return col.name if col is not None else None


def _dimension(node: exp.Expr, ctx: Context, ref: DatasetRef, where: str) -> str:
    name = _column(node, ref)
    grant = ref.access.grant if ref.access else None
    assert grant is not None
    if name is None or name not in grant.dimensions:
        shown = f"`{name}`" if name else "an expression"
        dims = ", ".join(f"`{d}`" for d in grant.dimensions) or "none"
        raise ColumnNotGranted(
            f"{shown} in {where} is no dimension of `{ref.dataset.name}` for "
            f"`{ctx.caller.name}`: group and filter by the grant's dimensions only ({dims})")
    return name


def _measures(ref: DatasetRef) -> dict[str, tuple[str, tuple[float, float] | None]]:
    """Aggregate-only column → (type family, clip)."""
    a = ref.access
    assert a is not None
    out: dict[str, tuple[str, tuple[float, float] | None]] = {}
    for c, m in a.masking.items():
        col = ref.dataset.column(c)
        if m.kind == "aggregate_only" and col is not None:
            out[c] = (type_family(col.type), m.clip)
    return out


def _output(x: exp.Expr, index: int, ctx: Context, ref: DatasetRef) -> Output:
    alias = x.alias if isinstance(x, exp.Alias) else ""
    node = x.this if isinstance(x, exp.Alias) else x
    if alias and alias.lower().startswith(RAW_PREFIX):
        raise StatementNotAllowed(f"names starting with `{RAW_PREFIX}` are reserved by the hub")
    if isinstance(node, exp.Column):
        dim = _dimension(node, ctx, ref, "SELECT")
        return Output(alias=alias or dim, dimension=dim)
    if not isinstance(node, exp.AggFunc):
        raise _refuse_value(node, ref, ctx)
    fn = node.key.lower()
    if isinstance(node, exp.Count):
        fn = "count"
    elif isinstance(node, exp.Sum):
        fn = "sum"
    elif isinstance(node, exp.Avg):
        fn = "avg"
    else:
        raise FunctionNotAllowed(
            f"`{ref.dataset.name}` is an aggregate dataset for you: only count, sum and avg "
            f"are answered; {_ANY} returns one subject's value by construction")
    arg = node.this
    if fn == "count" and isinstance(arg, exp.Star):
        if len(node.expressions) or node.args.get("distinct"):
            raise _refuse_value(node, ref, ctx)
        return Output(alias=alias or f"count_{index}" if index else alias or "count",
                      aggregate="count")
    measures = _measures(ref)
    name = _column(arg, ref) if arg is not None else None
    if name is None or name not in measures or len(node.expressions) or \
            any(v for k, v in node.args.items() if k not in ("this", "big_int")):
        raise _refuse_value(node, ref, ctx)
    family, clip = measures[name]
    if fn != "count" and (family not in _NUMERIC or clip is None):
        raise ColumnNotGranted(
            f"`{name}` of `{ref.dataset.name}` can only be counted: {fn} needs a numeric "
            "column whose grant declares `clip = [lo, hi]` (ask its owner)")
    return Output(alias=alias or f"{fn}_{name}", aggregate=fn, measure=name)


def _refuse_value(node: exp.Expr, ref: DatasetRef, ctx: Context) -> ColumnNotGranted:
    measures = ", ".join(f"`{m}`" for m in _measures(ref))
    return ColumnNotGranted(
        f"`{ref.dataset.name}` is granted to `{ctx.caller.name}` for aggregates only: select "
        f"dimensions, count(*), and count/sum/avg of a bare measure ({measures}) — no "
        "expression, cast, CASE or DISTINCT")


def _group(e: exp.Select, outputs: tuple[Output, ...], ctx: Context, ref: DatasetRef
           ) -> tuple[str, ...]:
    g = e.args.get("group")
    if g is None:
        return ()
    if any(v for k, v in g.args.items() if k != "expressions") or any(
            isinstance(x, (exp.Rollup, exp.Cube, exp.GroupingSets)) for x in g.expressions):
        raise _shape(ref.dataset.name, "a plain GROUP BY (no ALL, ROLLUP, CUBE or GROUPING "
                                       "SETS)")
    dims: list[str] = []
    for x in g.expressions:
        if isinstance(x, exp.Literal) and x.is_int:
            i = int(x.this)
            if not 1 <= i <= len(outputs) or outputs[i - 1].dimension is None:
                raise _shape(ref.dataset.name, "GROUP BY positions of selected dimensions")
            name = outputs[i - 1].dimension
            assert name is not None
        else:
            by_alias = next((o.dimension for o in outputs if isinstance(x, exp.Column)
                             and not x.table and o.alias.lower() == x.name.lower()
                             and o.dimension), None)
            name = by_alias or _dimension(x, ctx, ref, "GROUP BY")
        if name not in dims:
            dims.append(name)
    return tuple(dims)


def _filters(e: exp.Select, ctx: Context, ref: DatasetRef) -> tuple[Filter, ...]:
    where = e.args.get("where")
    if where is None:
        return ()
    out: list[Filter] = []
    for part in where.this.flatten() if isinstance(where.this, exp.And) else [where.this]:
        node, keep = part, True
        while isinstance(node, exp.Paren):
            node = node.this
        if isinstance(node, exp.Not) and isinstance(node.this, exp.In):
            node, keep = node.this, False
        if not isinstance(node, _OPS):
            raise _shape(ref.dataset.name, "WHERE only `dimension = value`, `<>`, `IN (…)`, "
                                           "`NOT IN (…)`, joined by AND")
        if isinstance(node, exp.In):
            if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
                raise _shape(ref.dataset.name, "IN over a list of values")
            col, values = node.this, list(node.expressions)
        else:
            left, right = node.this, node.expression
            col, values = (left, [right]) if isinstance(right, _VALUE) else (right, [left])
            keep = keep and isinstance(node, exp.EQ)
        if not values or not all(isinstance(v, _VALUE) for v in values):
            raise _shape(ref.dataset.name, "a dimension compared with literal values")
        out.append(Filter(_dimension(col, ctx, ref, "WHERE"), keep,
                          tuple(v.copy() for v in values)))
    return tuple(out)


def _order(e: exp.Select, outputs: tuple[Output, ...], ctx: Context, ref: DatasetRef
           ) -> tuple[tuple[int, bool], ...]:
    o = e.args.get("order")
    if o is None:
        return ()
    out: list[tuple[int, bool]] = []
    for item in o.expressions:
        x = item.this
        pos: int | None = None
        if isinstance(x, exp.Literal) and x.is_int and 1 <= int(x.this) <= len(outputs):
            pos = int(x.this)
        elif isinstance(x, exp.Column) and not x.table:
            pos = next((i + 1 for i, out_ in enumerate(outputs)
                        if out_.alias.lower() == x.name.lower()), None)
        if pos is None and isinstance(x, exp.Column):
            name = _column(x, ref)
            pos = next((i + 1 for i, out_ in enumerate(outputs)
                        if name and out_.dimension == name), None)
        if pos is None and isinstance(x, exp.AggFunc):
            want = _output(x, 0, ctx, ref)
            pos = next((i + 1 for i, out_ in enumerate(outputs)
                        if (out_.aggregate, out_.measure) == (want.aggregate, want.measure)
                        and out_.aggregate), None)
        if pos is None:
            raise _shape(ref.dataset.name, "ORDER BY outputs of the query (names or "
                                           "positions)")
        out.append((pos, bool(item.args.get("desc"))))
    return tuple(out)


def _int(e: exp.Select, key: str, dataset: str) -> int | None:
    node = e.args.get(key)
    if node is None:
        return None
    value = node.expression if isinstance(node, (exp.Limit, exp.Offset)) else node
    if not (isinstance(value, exp.Literal) and value.is_int):
        raise _shape(dataset, f"{key.upper()} a whole number")
    return int(value.this)


def aggregate_sql(req: AggregateRequest) -> exp.Select:
    """The query the hub runs for ``req``: ``SELECT outputs FROM cells WHERE big cells AND
    filters GROUP BY dims HAVING count(DISTINCT subject) >= k`` (module docstring).

    Its only relation is the request's dataset reference (aliased ``VIEW``), which the
    firewall's ``governed_views`` turns into the governed view; ``ref.columns`` and
    ``ref.internal`` are set to what that view must expose.
    """
    ref = req.ref
    a = ref.access
    assert a is not None and a.grant is not None
    grant = a.grant
    k = _k(ref)
    measures = _measures(ref)
    used = sorted({o.measure for o in req.outputs if o.measure})
    dims = list(grant.dimensions)
    ref.alias = VIEW
    ref.columns = set(dims) | set(used)
    ref.internal = {grant.subject} if grant.subject else set()
    table = exp.Table(this=exp.to_identifier("aggregated"), db=exp.to_identifier("hub"),
                      alias=exp.TableAlias(this=exp.to_identifier(VIEW)))
    table.meta[REF] = req.index

    def v(col: str) -> exp.Column:
        return exp.column(col, table=VIEW, quoted=True)

    def c(col: str) -> exp.Column:
        return exp.column(col, table=CELLS, quoted=True)

    inner_cols: list[exp.Expr] = [exp.alias_(v(d), d, quoted=True) for d in dims]
    for m in used:
        family, clip = measures[m]
        inner_cols.append(exp.alias_(_clipped(v(m), clip) if clip and family in _NUMERIC
                                     else v(m), m, quoted=True))
    subject = v(grant.subject) if grant.subject else None
    if subject is not None:
        inner_cols.append(exp.alias_(subject.copy(), SUBJECT, quoted=True))
        size: exp.Expr = exp.Count(this=exp.Distinct(expressions=[subject.copy()]))
    else:
        size = exp.Count(this=exp.Star())
    window = exp.Window(this=size, partition_by=[v(d) for d in dims]) if dims else \
        exp.Window(this=size)
    inner_cols.append(exp.alias_(window, CELL_SIZE, quoted=True))
    inner = exp.select(*inner_cols).from_(table)
    if subject is not None:
        inner = inner.where(exp.Not(this=exp.Is(this=subject.copy(), expression=exp.Null())))
    outer_cols: list[exp.Expr] = []
    for o in req.outputs:
        if o.dimension:
            value: exp.Expr = c(o.dimension)
        elif o.measure is None:
            value = exp.Count(this=exp.Star())
        elif o.aggregate == "count":
            value = exp.Count(this=c(o.measure))
        elif o.aggregate == "sum":
            value = exp.Sum(this=c(o.measure))
        else:
            value = exp.Avg(this=c(o.measure))
        outer_cols.append(exp.alias_(value, o.alias, quoted=True))
    floor = exp.GTE(this=c(CELL_SIZE), expression=exp.Literal.number(k))
    conds: list[exp.Expr] = [floor]
    for f in req.filters:
        declared = ref.dataset.column(f.dimension)
        assert declared is not None
        # TRY_CAST: a value of the wrong type matches nothing, and has no error path (an
        # error raised on some rows only would tell which rows the engine reached)
        values = [exp.TryCast(this=x.copy(), to=exp.DataType.build(declared.type,
                                                                  dialect="duckdb"))
                  for x in f.values]
        test: exp.Expr = exp.In(this=c(f.dimension), expressions=values)
        conds.append(test if f.keep else exp.Not(this=exp.Paren(this=test)))
    cells = exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier(CELLS)))
    q = exp.select(*outer_cols).from_(cells).where(exp.and_(*conds))
    if req.group:
        q = q.group_by(*[c(d) for d in req.group])
    groups = exp.Count(this=exp.Distinct(expressions=[c(SUBJECT)])) if grant.subject else \
        exp.Count(this=exp.Star())
    q = q.having(exp.GTE(this=groups, expression=exp.Literal.number(k)))
    if req.order:
        q = q.order_by(*[exp.Ordered(this=exp.Literal.number(p), desc=d, nulls_first=False)
                         for p, d in req.order])
    if req.limit is not None:
        q = q.limit(req.limit)
    if req.offset is not None:
        q = q.offset(req.offset)
    return q


def _clipped(col: exp.Expr, clip: tuple[float, float]) -> exp.Expr:
    """``col`` as DOUBLE, clipped to ``[lo, hi]`` (NULL stays NULL; never an error)."""
    lo, hi = (exp.cast(exp.Literal.number(repr(float(b))), "DOUBLE") for b in clip)
    assert max(abs(clip[0]), abs(clip[1])) <= CLIP_MAX
    x = exp.cast(col, "DOUBLE")
    return exp.Case(ifs=[exp.If(this=exp.LT(this=x.copy(), expression=lo.copy()), true=lo),
                         exp.If(this=exp.GT(this=x.copy(), expression=hi.copy()), true=hi)],
                    default=x)
