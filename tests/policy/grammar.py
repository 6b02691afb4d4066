"""A grammar of the attack constructs, as a Hypothesis-driven query builder.

The builder draws from ``st.data()`` (positions, never data values: the values it writes are
looked up in lists the test built from the raw rows, so Hypothesis can replay and shrink) and
writes DuckDB-dialect SQL from: CTEs at every nesting level (named neutrally, after the names
a rewritten query uses, or referenced outside the scope that defines them), set operations
(UNION, INTERSECT, EXCEPT, with ALL), joins, correlated and LATERAL subqueries, window
functions, CASE, VALUES tables, casts and every allowed function with argument shapes that
type-check often.

Every query it writes is deterministic as a multiset (LIMIT only under an ORDER BY of every
output column, windows ordered by every input column, order-sensitive aggregates ordered), or
is marked ``loose`` (compared by row count only).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

N, T, TM, B, A = "num", "text", "time", "bool", "any"
FAMILIES = (N, T, TM, B)
CAST_TO = {N: ["BIGINT", "DOUBLE", "DECIMAL(12,2)"], T: ["VARCHAR"], TM: ["TIMESTAMP", "DATE"],
           B: ["BOOLEAN"]}

# name → (argument shapes, result). A shape is a family, ``any``, or a literal kind
# (``part``, ``q``, ``sep``, ``pat``, ``int:LO-HI``, ``lit:SQL``…); a result ``=i`` is the
# family of argument i; ``other`` results (lists, structs, intervals) are only selected.
AGGREGATES: dict[str, tuple[list[str], str]] = {
    "count": ([A], N), "sum": ([N], N), "avg": ([N], N), "min": ([A], "=0"), "max": ([A], "=0"),
    "median": ([N], N), "mode": ([A], "=0"), "stddev": ([N], N), "stddev_samp": ([N], N),
    "stddev_pop": ([N], N), "variance": ([N], N), "var_samp": ([N], N), "var_pop": ([N], N),
    "quantile": ([N, "q"], N), "quantile_cont": ([N, "q"], N), "quantile_disc": ([A, "q"], "=0"),
    "approx_count_distinct": ([A], N), "approx_quantile": ([N, "q"], N),
    "string_agg": ([T, "sep"], T), "group_concat": ([T, "sep"], T), "list": ([A], "other"),
    "array_agg": ([A], "other"), "bool_and": ([B], B), "bool_or": ([B], B),
    "bit_and": (["int"], N), "bit_or": (["int"], N), "first": ([A], "=0"), "last": ([A], "=0"),
    "any_value": ([A], "=0"), "arg_min": ([A, N], "=0"), "arg_max": ([A, N], "=0"),
    "argmin": ([A, N], "=0"), "argmax": ([A, N], "=0"), "count_if": ([B], N),
    "countif": ([B], N), "corr": ([N, N], N), "covar_pop": ([N, N], N),
    "covar_samp": ([N, N], N), "regr_slope": ([N, N], N), "regr_intercept": ([N, N], N),
}
# aggregates whose result depends on the order rows arrive in: given an ORDER BY inside
ORDERED_AGGREGATES = {"string_agg", "group_concat", "list", "array_agg", "first", "last",
                      "any_value"}
# results that depend on ties no ORDER BY can break: compared by row count only
LOOSE = {"mode", "arg_min", "arg_max", "argmin", "argmax", "approx_quantile"}
WINDOWS: dict[str, tuple[list[str], str]] = {
    "row_number": ([], N), "rank": ([], N), "dense_rank": ([], N), "percent_rank": ([], N),
    "cume_dist": ([], N), "ntile": (["int:2-4"], N), "lag": ([A], "=0"), "lead": ([A], "=0"),
    "first_value": ([A], "=0"), "last_value": ([A], "=0"), "nth_value": ([A, "int:1-3"], "=0"),
}
_UNARY_NUM = ("abs ceil ceiling floor sign sqrt exp ln log log2 log10 degrees radians sin cos "
              "tan asin acos atan cot trunc").split()
SCALARS: dict[str, tuple[list[str], str]] = {
    **{f: ([N], N) for f in _UNARY_NUM},
    "round": ([N, "int:0-2"], N), "pow": ([N, "int:0-3"], N), "power": ([N, "int:0-3"], N),
    "mod": (["int", "int:1-7"], N), "atan2": ([N, N], N), "pi": ([], N),
    "greatest": ([A, "=0"], "=0"), "least": ([A, "=0"], "=0"), "coalesce": ([A, "=0"], "=0"),
    "nullif": ([A, "=0"], "=0"), "ifnull": ([A, "=0"], "=0"), "if": ([B, A, "=1"], "=1"),
    "iif": ([B, A, "=1"], "=1"),
    **{f: ([T], T) for f in "lower upper lcase ucase trim ltrim rtrim reverse md5 sha256".split()},
    **{f: ([T], N) for f in "length len char_length strlen ascii unicode".split()},
    "concat": ([A, A], T), "concat_ws": (["sep", A, A], T),
    "substr": ([T, "int:1-3", "int:1-6"], T), "substring": ([T, "int:1-3", "int:1-6"], T),
    "left": ([T, "int:1-5"], T), "right": ([T, "int:1-5"], T),
    "lpad": ([T, "int:4-12", "lit:'*'"], T), "rpad": ([T, "int:4-12", "lit:'*'"], T),
    "replace": ([T, "textlit", "textlit"], T), "reverse2": ([T], T),
    "strpos": ([T, "textlit"], N), "instr": ([T, "textlit"], N),
    **{f: ([T, "textlit"], B) for f in "contains starts_with ends_with prefix suffix".split()},
    "split_part": ([T, "sep", "int:1-2"], T), "regexp_matches": ([T, "pat"], B),
    "regexp_replace": ([T, "pat", "lit:'#'"], T), "regexp_extract": ([T, "pat"], T),
    "hash": ([A], N), "format": (["lit:'{}/{}'", A, A], T), "printf": (["lit:'%s'", T], T),
    "chr": (["int:65-90"], T), "like_escape": ([T, "likepat", "lit:'!'"], B),
    "ilike_escape": ([T, "likepat", "lit:'!'"], B),
    "date_trunc": (["part", TM], TM), "datetrunc": (["part", TM], TM),
    "date_part": (["part", TM], N), "datepart": (["part", TM], N),
    **{f: ([TM], N) for f in ("year month day hour minute second week dayofweek dayofyear "
                              "isodow quarter epoch epoch_ms").split()},
    "strftime": ([TM, "lit:'%Y-%m-%d %H'"], T), "strptime": (["datestr", "lit:'%Y-%m-%d'"], TM),
    "make_date": (["int:2020-2026", "int:1-12", "int:1-28"], TM),
    "make_time": (["int:0-23", "int:0-59", "int:0-59"], "other"),
    "make_timestamp": (["int:2020-2026", "int:1-12", "int:1-28", "int:0-23", "int:0-59",
                        "int:0-59"], TM),
    "date_diff": (["part", TM, TM], N), "datediff": (["part", TM, TM], N),
    "date_sub": (["part", TM, TM], N), "date_add": ([TM, "interval"], TM),
    "age": ([TM, TM], "other"), "time_bucket": (["interval", TM], TM), "last_day": ([TM], TM),
    "monthname": ([TM], T), "dayname": ([TM], T), "to_timestamp": (["epoch"], TM),
    "current_date": ([], TM), "today": ([], TM), "list_value": ([A, "=0"], "other"),
}
del SCALARS["reverse2"]
# allowed names that are syntax rather than calls: written by the builder directly
SPECIAL = {"extract", "position", "try_cast", "struct_pack", "unnest"}
# scalars whose value changes with the day the test runs: compared as usual (same day)
PARTS = ["'year'", "'month'", "'day'", "'hour'"]


def signatures() -> set[str]:
    """Every function name the builder can write."""
    return set(AGGREGATES) | set(WINDOWS) | set(SCALARS) | SPECIAL


@dataclass
class Rel:
    """A relation in scope: how it is written in FROM, its alias and its columns."""

    sql: str
    alias: str
    cols: list[tuple[str, str]]  # (name, family)
    small: bool = True


@dataclass
class Table:
    """A dataset the builder may read (the caller's view of it, or not)."""

    name: str
    cols: list[tuple[str, str]]
    small: bool
    all_cols: list[tuple[str, str]] = field(default_factory=list)  # ungranted ones too


@dataclass
class Literals:
    """Values the builder may write, by family (from what the caller may see)."""

    text: list[str]
    num: list[str]
    time: list[str]

    def of(self, fam: str, i: int) -> str:
        if fam == N:
            return self.num[i % len(self.num)]
        if fam == TM:
            return self.time[i % len(self.time)]
        if fam == B:
            return ("TRUE", "FALSE", "NULL")[i % 3]
        return self.text[i % len(self.text)]


def sql_str(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


class Builder:
    """One query, drawn from ``data``.

    Args:
        tables: the datasets to read (mostly the caller's own views).
        literals: the values to compare with.
        mode: ``general`` (neutral CTE names), ``capture`` (CTEs named after the names a
            rewritten query uses, with those tables' column names) or ``scope`` (names
            referenced where no CTE of that name is visible).
        names: the name pool for ``capture``/``scope``; ``columns_of``: name → the column
            names of the real table of that name (for CTEs that mimic it).
    """

    MAX_DEPTH = 3

    def __init__(self, data: Any | random.Random, tables: list[Table], literals: Literals,
                 mode: str = "general",
                 names: list[str] | None = None,
                 columns_of: dict[str, list[tuple[str, str]]] | None = None,
                 hot: list[str] | None = None) -> None:
        self.data = data
        self.tables = tables
        self.lits = literals
        self.mode = mode
        self.names = names or []
        self.columns_of = columns_of or {}
        self.hot = hot or []
        self.n = 0
        self.loose = False
        self.functions: set[str] = set()

    # --- drawing ---------------------------------------------------------------------------

    def int(self, lo: int, hi: int) -> int:
        if isinstance(self.data, random.Random):
            return self.data.randint(lo, hi)
        return int(self.data.draw(st.integers(lo, hi)))

    def chance(self, p: float) -> bool:
        return self.int(0, 99) < int(p * 100)

    def pick(self, seq: list[Any]) -> Any:
        return seq[self.int(0, len(seq) - 1)]

    def fresh(self, prefix: str = "a") -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    # --- queries ---------------------------------------------------------------------------

    def query(self, depth: int = 0, ctes: dict[str, Rel] | None = None,
              want: list[str] | None = None, top: bool = False) -> tuple[str, list[tuple[str,
                                                                                   str]]]:
        """A query (``WITH`` … ``SELECT`` …, maybe a set operation) and its output columns."""
        ctes = dict(ctes or {})
        with_sql = ""
        capture = self.mode == "capture" and depth == 0
        if capture or depth < self.MAX_DEPTH and self.chance(0.45 if depth == 0 else 0.25):
            parts = []
            for _ in range(1 if capture else self.int(1, 2)):
                name = self.cte_name(ctes)
                body, cols = self.cte_body(depth, ctes, name)
                ctes[name] = Rel(name, name, cols)
                parts.append(f"{name} AS ({body})")
            with_sql = "WITH " + ", ".join(parts) + " "
        if capture and self.chance(0.6):  # a plain read of a dataset, as pushdown takes it
            t = self.pick(self.tables)
            alias = self.fresh("r")
            rel = Rel(f"{t.name} AS {alias}", alias, list(t.cols))
            where = f" WHERE {self.pred([rel], depth, 0)}" if self.chance(0.3) else ""
            if self.chance(0.5):
                return with_sql + f"SELECT count(*) AS n FROM {rel.sql}{where}", [("n", N)]
            col, fam = self.pick(t.cols)
            return (with_sql + f"SELECT {alias}.{col} AS c, count(*) AS n FROM {rel.sql}"
                    f"{where} GROUP BY {alias}.{col}", [("c", fam), ("n", N)])
        sql, cols = self.core(depth, ctes, want)
        if self.chance(0.2) and depth < self.MAX_DEPTH:
            op = self.pick(["UNION", "UNION ALL", "INTERSECT", "EXCEPT", "INTERSECT ALL",
                            "EXCEPT ALL"])
            other, _ = self.core(depth, ctes, [f for _, f in cols])
            sql = f"({sql}) {op} ({other})" if self.chance(0.5) else f"{sql} {op} {other}"
        if top and self.chance(0.4):
            order = ", ".join(str(i + 1) for i in range(len(cols)))
            sql = f"SELECT * FROM ({sql}) AS zq ORDER BY {order} LIMIT {self.int(1, 30)}"
        return with_sql + sql, cols

    def cte_name(self, ctes: dict[str, Rel]) -> str:
        if self.mode == "general" or not self.names or self.chance(0.2):
            return self.fresh("t")
        pool = self.hot if self.hot and self.chance(0.7) else self.names
        name = self.pick(pool)
        return name if name not in ctes else self.fresh("t")

    def cte_body(self, depth: int, ctes: dict[str, Rel], name: str
                 ) -> tuple[str, list[tuple[str, str]]]:
        """A CTE's query; in ``capture`` mode its columns are named after the real table
        of that name, so that a rewritten query capturing it still binds."""
        mimic = self.columns_of.get(name) if self.mode == "capture" else None
        if mimic and self.chance(0.4):  # literal rows only: a query that can be pushed down
            rows = []
            for _ in range(self.int(1, 3)):
                # times and booleans as text: a typed literal is a cast SQLite cannot take
                rows.append("SELECT " + ", ".join(
                    f"{self.lits.of(fam if fam == N else T, self.int(0, 999))} AS {col}"
                    for col, fam in mimic))
            return " UNION ALL ".join(rows), list(mimic)
        if mimic and self.chance(0.8):
            rel = self.from_item(depth + 1, ctes)
            items = []
            for col, fam in mimic:
                if self.chance(0.3):
                    items.append(f"{self.lits.of(fam, self.int(0, 999))} AS {col}")
                else:
                    items.append(f"{self.expr([rel], fam, depth + 1)} AS {col}")
            sql = f"SELECT {'DISTINCT ' if self.chance(0.3) else ''}{', '.join(items)} " \
                  f"FROM {rel.sql}"
            if self.chance(0.3):
                sql += f" WHERE {self.pred([rel], depth + 1)}"
            return sql, list(mimic)
        return self.query(depth + 1, ctes)

    def core(self, depth: int, ctes: dict[str, Rel], want: list[str] | None = None
             ) -> tuple[str, list[tuple[str, str]]]:
        """``SELECT … FROM … [JOIN …] [WHERE …] [GROUP BY …]``."""
        rels = [self.from_item(depth, ctes)]
        from_sql = rels[0].sql
        if depth < self.MAX_DEPTH and self.chance(0.3):
            other = self.from_item(depth + 1, ctes)
            on = [(a, b) for a, fa in rels[0].cols for b, fb in other.cols if fa == fb]
            if on:
                same = [p for p in on if p[0] == p[1]] or on
                a, b = self.pick(same)
                kind = self.pick(["JOIN", "LEFT JOIN", "INNER JOIN"])
                from_sql += f" {kind} {other.sql} ON {rels[0].alias}.{a} = {other.alias}.{b}"
                rels.append(other)
            elif rels[0].small and other.small:
                from_sql += f" CROSS JOIN {other.sql}"
                rels.append(other)
        elif depth < self.MAX_DEPTH and self.chance(0.15):
            lateral = self.lateral(rels[0], depth)
            if lateral is not None:
                sql, rel = lateral
                from_sql += f", LATERAL {sql}"
                rels.append(rel)
        where = f" WHERE {self.pred(rels, depth)}" if self.chance(0.5) else ""
        kind = "plain" if want else self.pick(["plain", "plain", "star", "agg", "agg",
                                               "window", "exotic"])
        if kind == "star":
            cols = [c for r in rels for c in r.cols]
            star = "*" if len(rels) == 1 or self.chance(0.5) else f"{rels[0].alias}.*"
            if star != "*":
                cols = list(rels[0].cols)
            return f"SELECT {star} FROM {from_sql}{where}", cols
        if kind == "agg":
            return self.aggregate(rels, from_sql, where, depth)
        items: list[str] = []
        out: list[tuple[str, str]] = []
        fams = want or [self.pick(list(FAMILIES)) for _ in range(self.int(1, 3))]
        for fam in fams:
            name = self.fresh("c")
            if kind == "window" and not items:
                items.append(f"{self.window(rels, depth)} AS {name}")
                out.append((name, N))
                continue
            if kind == "exotic" and not items:
                e, fam = self.exotic(rels, depth)
                items.append(f"{e} AS {name}")
                out.append((name, fam))
                continue
            items.append(f"{self.expr(rels, fam, depth)} AS {name}")
            out.append((name, fam))
        distinct = "DISTINCT " if self.chance(0.15) else ""
        return f"SELECT {distinct}{', '.join(items)} FROM {from_sql}{where}", out

    def from_item(self, depth: int, ctes: dict[str, Rel]) -> Rel:
        alias = self.fresh("r")
        choice = self.int(0, 9)
        if ctes and choice < 3:
            cte = self.pick(list(ctes.values()))
            return Rel(f"{cte.sql} AS {alias}", alias, cte.cols)
        if choice == 3 and depth < self.MAX_DEPTH:
            sql, cols = self.query(depth + 1, ctes)
            return Rel(f"({sql}) AS {alias}", alias, cols)
        if choice == 4:
            return self.values(alias)
        t = self.pick(self.tables)
        cols = t.cols
        if t.all_cols and self.chance(0.1):
            cols = t.all_cols  # ungranted columns too: the hub must refuse their use
        return Rel(f"{t.name} AS {alias}", alias, list(cols), t.small)

    def values(self, alias: str) -> Rel:
        fams = [self.pick(list(FAMILIES)) for _ in range(self.int(1, 3))]
        rows = [", ".join(self.lits.of(f, self.int(0, 999)) for f in fams)
                for _ in range(self.int(1, 4))]
        names = [self.fresh("v") for _ in fams]
        body = ", ".join(f"({r})" for r in rows)
        return Rel(f"(VALUES {body}) AS {alias}({', '.join(names)})", alias,
                   list(zip(names, fams, strict=True)))

    def lateral(self, outer: Rel, depth: int) -> tuple[str, Rel] | None:
        t = self.pick(self.tables)
        pairs = [(a, b) for a, fa in outer.cols for b, fb in t.cols if fa == fb and fa != B]
        if not pairs:
            return None
        a, b = self.pick(pairs)
        s, alias = self.fresh("s"), self.fresh("l")
        fam = self.pick([f for _, f in t.cols])
        col = self.pick([c for c, f in t.cols if f == fam])
        agg = "max" if self.chance(0.5) else "min"
        sql = (f"(SELECT count(*) AS n, {agg}({s}.{col}) AS m FROM {t.name} AS {s} "
               f"WHERE {s}.{b} = {outer.alias}.{a}) AS {alias}")
        return sql, Rel(alias, alias, [("n", N), ("m", fam)])

    def aggregate(self, rels: list[Rel], from_sql: str, where: str, depth: int
                  ) -> tuple[str, list[tuple[str, str]]]:
        cols = [(r.alias, c, f) for r in rels for c, f in r.cols]
        keys = [self.pick(cols) for _ in range(self.int(0, 2))]
        items, out, group = [], [], []
        for a, c, f in keys:
            name = self.fresh("g")
            items.append(f"{a}.{c} AS {name}")
            group.append(f"{a}.{c}")
            out.append((name, f))
        for _ in range(self.int(1, 2)):
            e, fam = self.agg_call(rels, depth)
            name = self.fresh("c")
            items.append(f"{e} AS {name}")
            out.append((name, fam))
        sql = f"SELECT {', '.join(items)} FROM {from_sql}{where}"
        if group:
            sql += f" GROUP BY {', '.join(group)}"
            if self.chance(0.3):
                sql += f" HAVING count(*) > {self.int(0, 3)}"
        return sql, out

    def agg_call(self, rels: list[Rel], depth: int) -> tuple[str, str]:
        name = self.pick(sorted(AGGREGATES))
        if name == "count" and self.chance(0.4):
            self.functions.add(name)
            return "count(*)", N
        args, fams = self.args(AGGREGATES[name][0], rels, depth)
        res = self.result(AGGREGATES[name][1], fams)
        self.functions.add(name)
        if name in LOOSE:
            self.loose = True
        order = f" ORDER BY {args[0]}" if name in ORDERED_AGGREGATES else ""
        distinct = "DISTINCT " if name in ("count", "sum") and self.chance(0.2) else ""
        if res == "other":
            return f"CAST({name}({distinct}{', '.join(args)}{order}) AS VARCHAR)", T
        return f"{name}({distinct}{', '.join(args)}{order})", res

    def window(self, rels: list[Rel], depth: int) -> str:
        cols = [(r.alias, c, f) for r in rels for c, f in r.cols]
        order = ", ".join(f"{a}.{c}" for a, c, _ in cols)
        part = self.pick(cols)
        over = f"OVER (PARTITION BY {part[0]}.{part[1]} ORDER BY {order})" if self.chance(0.6) \
            else f"OVER (ORDER BY {order})"
        if self.chance(0.3):
            fn = self.pick([f for f in ("count", "sum", "min", "max", "avg")])
            args, _ = self.args(AGGREGATES[fn][0], rels, depth)
            self.functions.add(fn)
            return f"CAST({fn}({args[0]}) {over} AS VARCHAR)"
        fn = self.pick(sorted(WINDOWS))
        self.functions.add(fn)
        args, _ = self.args(WINDOWS[fn][0], rels, depth)
        return f"CAST({fn}({', '.join(args)}) {over} AS VARCHAR)"

    def exotic(self, rels: list[Rel], depth: int) -> tuple[str, str]:
        """A select item of the syntax-like functions or an ``other``-typed call."""
        k = self.int(0, 5)
        if k == 0:
            self.functions.add("struct_pack")
            return (f"CAST(struct_pack(x := {self.expr(rels, N, depth)}, y := "
                    f"{self.expr(rels, T, depth)}) AS VARCHAR)"), T
        if k == 1:
            self.functions |= {"unnest", "list_value"}
            fam = self.pick(list(FAMILIES))
            return (f"unnest(list_value({self.expr(rels, fam, depth)}, "
                    f"{self.expr(rels, fam, depth)}))"), fam
        if k == 2:
            self.functions.add("extract")
            return f"extract({self.pick(['year', 'month', 'hour'])} FROM " \
                   f"{self.expr(rels, TM, depth)})", N
        if k == 3:
            self.functions.add("position")
            return f"position({self.lit_text()} IN {self.expr(rels, T, depth)})", N
        names = [n for n, (_, r) in SCALARS.items() if r == "other"]
        name = self.pick(names)
        args, _ = self.args(SCALARS[name][0], rels, depth)
        self.functions.add(name)
        return f"CAST({name}({', '.join(args)}) AS VARCHAR)", T

    # --- expressions -----------------------------------------------------------------------

    def lit_text(self) -> str:
        return self.lits.of(T, self.int(0, 999))

    def column(self, rels: list[Rel], fam: str) -> str | None:
        cols = [(r.alias, c) for r in rels for c, f in r.cols if f == fam or fam == A]
        if not cols:
            return None
        a, c = self.pick(cols)
        return f"{a}.{c}"

    def expr(self, rels: list[Rel], fam: str, depth: int, budget: int = 2) -> str:
        """An expression of family ``fam`` over the columns of ``rels``."""
        k = self.int(0, 11) if budget > 0 else self.int(0, 2)
        if k <= 2:
            col = self.column(rels, fam)
            if col is not None:
                return col
            return self.lits.of(fam if fam != A else T, self.int(0, 999))
        if k == 3:
            return self.lits.of(fam if fam != A else N, self.int(0, 999))
        if k <= 6:
            return self.call(rels, fam, depth, budget - 1)
        if k == 7:
            return (f"CASE WHEN {self.pred(rels, depth, budget - 1)} THEN "
                    f"{self.expr(rels, fam, depth, budget - 1)} ELSE "
                    f"{self.expr(rels, fam, depth, budget - 1)} END")
        if k == 8:
            src = self.pick(list(FAMILIES))
            to = self.pick(CAST_TO.get(fam, ["VARCHAR"]))
            cast = "TRY_CAST" if self.chance(0.5) else "CAST"
            if cast == "TRY_CAST":
                self.functions.add("try_cast")
            return f"{cast}({self.expr(rels, src, depth, budget - 1)} AS {to})"
        if k == 9 and depth < self.MAX_DEPTH:
            return self.scalar_subquery(rels, fam, depth)
        col = self.column(rels, fam)
        return col or self.lits.of(fam if fam != A else N, self.int(0, 999))

    def call(self, rels: list[Rel], fam: str, depth: int, budget: int) -> str:
        want = fam if fam != A else self.pick(list(FAMILIES))
        names = [n for n, (args, r) in SCALARS.items()
                 if r == want or (r.startswith("=") and self._can(args[int(r[1:])], want))]
        name = self.pick(sorted(names))
        shapes = list(SCALARS[name][0])
        res = SCALARS[name][1]
        if res.startswith("="):
            shapes[int(res[1:])] = want
            shapes = [want if s.startswith("=") else s for s in shapes]
        args, _ = self.args(shapes, rels, depth, budget)
        self.functions.add(name)
        return f"{name}({', '.join(args)})"

    @staticmethod
    def _can(shape: str, fam: str) -> bool:
        return shape in (A, fam)

    def args(self, shapes: list[str], rels: list[Rel], depth: int, budget: int = 1
             ) -> tuple[list[str], list[str]]:
        out, fams = [], []
        for s in shapes:
            if s.startswith("="):
                s = fams[int(s[1:])]
            if s in FAMILIES or s == A:
                fam = s if s != A else self.pick(list(FAMILIES))
                out.append(self.expr(rels, fam, depth, budget))
                fams.append(fam)
            elif s == "int":
                out.append(f"CAST({self.expr(rels, N, depth, budget)} AS BIGINT)")
                fams.append(N)
            elif s.startswith("int:"):
                lo, hi = (int(x) for x in s[4:].split("-"))
                out.append(str(self.int(lo, hi)))
                fams.append(N)
            elif s.startswith("lit:"):
                out.append(s[4:])
                fams.append(T)
            elif s == "q":
                out.append(self.pick(["0.25", "0.5", "0.9"]))
                fams.append(N)
            elif s == "sep":
                out.append(self.pick(["','", "'-'", "'|'"]))
                fams.append(T)
            elif s == "pat":
                out.append(self.pick(["'^[a-z]+'", "'[0-9]+'", "'(xi|hu)'", "'.'"]))
                fams.append(T)
            elif s == "likepat":
                out.append(self.pick(["'%a%'", "'x%'", "'%!_%'", "'_'"]))
                fams.append(T)
            elif s == "textlit":
                out.append(self.lit_text())
                fams.append(T)
            elif s == "part":
                out.append(self.pick(PARTS))
                fams.append(T)
            elif s == "datestr":
                out.append(self.pick(["'2026-01-02'", "'2025-12-31'"]))
                fams.append(T)
            elif s == "interval":
                out.append(self.pick(["INTERVAL 1 DAY", "INTERVAL '2 hours'", "INTERVAL 1 MONTH"]))
                fams.append("other")
            elif s == "epoch":
                out.append(f"epoch({self.expr(rels, TM, depth, budget)})")
                fams.append(N)
            else:
                raise AssertionError(f"unknown argument shape {s}")
        return out, fams

    @staticmethod
    def result(res: str, fams: list[str]) -> str:
        return fams[int(res[1:])] if res.startswith("=") else res

    def scalar_subquery(self, rels: list[Rel], fam: str, depth: int) -> str:
        t = self.pick(self.tables)
        s = self.fresh("s")
        cols = [c for c, f in t.cols if f == fam]
        target = f"{s}.{self.pick(cols)}" if cols else self.lits.of(fam, 0)
        agg = self.pick(["max", "min"])
        where = ""
        pairs = [(r.alias, a, b) for r in rels for a, fa in r.cols for b, fb in t.cols
                 if fa == fb and fa != B]
        if pairs and self.chance(0.7):  # correlated
            alias, a, b = self.pick(pairs)
            where = f" WHERE {s}.{b} = {alias}.{a}"
        return f"(SELECT {agg}({target}) FROM {t.name} AS {s}{where})"

    def pred(self, rels: list[Rel], depth: int, budget: int = 2) -> str:
        k = self.int(0, 9) if budget > 0 else self.int(0, 2)
        fam = self.pick(list(FAMILIES))
        if k <= 2:
            op = self.pick(["=", "<>", "<", ">", "<=", ">="]) if fam != B else "="
            rhs = self.lits.of(fam, self.int(0, 999)) if self.chance(0.7) else \
                self.expr(rels, fam, depth, 0)
            return f"{self.expr(rels, fam, depth, budget - 1)} {op} {rhs}"
        if k == 3:
            return f"{self.expr(rels, fam, depth, 0)} IS {'NOT ' if self.chance(0.5) else ''}NULL"
        if k == 4:
            vals = ", ".join(self.lits.of(fam, self.int(0, 999)) for _ in range(self.int(1, 3)))
            return f"{self.expr(rels, fam, depth, 0)} IN ({vals})"
        if k == 5 and depth < self.MAX_DEPTH:
            t = self.pick(self.tables)
            cols = [c for c, f in t.cols if f == fam]
            if cols:
                s = self.fresh("s")
                inner = f"SELECT {s}.{self.pick(cols)} FROM {t.name} AS {s}"
                if self.chance(0.4):
                    inner += f" WHERE {self.pred([Rel(t.name, s, t.cols)], depth + 1, 0)}"
                neg = "NOT " if self.chance(0.3) else ""
                return f"{self.expr(rels, fam, depth, 0)} {neg}IN ({inner})"
        if k == 6 and depth < self.MAX_DEPTH:
            t = self.pick(self.tables)
            s = self.fresh("s")
            pairs = [(r.alias, a, b) for r in rels for a, fa in r.cols for b, fb in t.cols
                     if fa == fb and fa != B]
            if pairs:
                alias, a, b = self.pick(pairs)
                neg = "NOT " if self.chance(0.3) else ""
                return (f"{neg}EXISTS (SELECT 1 FROM {t.name} AS {s} "
                        f"WHERE {s}.{b} = {alias}.{a})")
        if k == 7:
            return f"NOT ({self.pred(rels, depth, budget - 1)})"
        if k == 8:
            conj = self.pick(["AND", "OR"])
            return f"({self.pred(rels, depth, budget - 1)} {conj} " \
                   f"{self.pred(rels, depth, budget - 1)})"
        if fam == T and self.chance(0.5):
            pattern = self.pick(["'%a%'", "'x%'", "'%1'", "'浙%'"])
            return f"{self.expr(rels, T, depth, 0)} LIKE {pattern}"
        lo = self.lits.of(fam, self.int(0, 999))
        hi = self.lits.of(fam, self.int(0, 999))
        return f"{self.expr(rels, fam, depth, 0)} BETWEEN {lo} AND {hi}"

    # --- names outside their scope (class 2) --------------------------------------------------

    def out_of_scope(self) -> str:
        """A query that names ``n`` where no CTE ``n`` is visible, though one may be
        defined elsewhere in the query."""
        name = self.pick(self.names)
        inner, _ = self.query(1, {})
        use = self.pick([f"SELECT * FROM {name}", f"SELECT count(*) AS n FROM {name}"])
        k = self.int(0, 5)
        if k == 0:  # defined in a FROM subquery, named beside it
            return f"SELECT * FROM (WITH {name} AS ({inner}) SELECT 1 AS one) AS q, " \
                   f"({use}) AS u"
        if k == 1:  # defined in a scalar subquery of the select list
            return f"SELECT (WITH {name} AS ({inner}) SELECT count(*) FROM {name}) AS a, " \
                   f"u.* FROM ({use}) AS u"
        if k == 2:  # defined inside another CTE's body
            return f"WITH w AS (WITH {name} AS ({inner}) SELECT 1 AS one) {use}"
        if k == 3:  # defined in one branch of a set operation
            return f"SELECT count(*) AS n FROM (SELECT * FROM (WITH {name} AS ({inner}) " \
                   f"SELECT 1 AS x) AS q UNION ALL SELECT 1 AS x FROM ({use}) AS u) AS z"
        if k == 4:  # a forward reference: a CTE read by an earlier one
            return f"WITH w AS ({use}), {name} AS ({inner}) SELECT * FROM w"
        return f"SELECT * FROM ({use}) AS u WHERE EXISTS (WITH {name} AS ({inner}) " \
               f"SELECT 1 FROM {name})"
