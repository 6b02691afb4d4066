"""Names in a governed query, generated: two attack classes of issue 15.

1. **Names that shadow what a governed view reads.** A caller's CTE (or alias) named like a
   table the hub writes into the rewritten query — a row scope's table, a source relation, an
   alias of the rewriter — must change nothing: the hub renames the caller's CTEs to reserved
   names, binds the views' columns to the views' own relations, and schema-qualifies source
   relations, which no engine lets a CTE stand in for.
2. **Names resolved outside their scope.** A one-part name is a CTE visible where it stands,
   or it is refused: never an engine's catalog (``duckdb_views``, ``pg_settings``,
   ``sqlite_master``, a source's raw table).

The generator builds queries from a small grammar: CTEs at every nesting level named after
every dataset, every raw and source table and every name the rewritten queries use (read
from the catalog, the sources and the rewritten SQL, not a hand list), references to them in
and out of scope (subqueries, derived tables, set-operation branches, lateral joins,
correlated subqueries), in mixed letter case. It knows by construction which references are
in scope. The oracle: a query with a reference out of scope is refused
(``dataset_not_found``); any other gets the same outcome as the same query with its CTEs
renamed to fresh names (equal rows, or the same refusal) on each path, and a row-scoped
caller's rows all lie inside its scope (computed from the raw tables with the sources' own
drivers). Fixed seed (``derandomize``): 15 examples × 9 targets on the embedded city (DuckDB
and native SQLite), 8 × 9 on PostgreSQL and MariaDB, each run on both paths, and again with
fresh CTE names when it does not escape; about 25 s in all.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from zhongshu.errors import ZhongshuError
from zhongshu.policy.firewall import govern
from zhongshu.policy.grants import Access, Grant
from zhongshu.policy.identity import Caller
from zhongshu.policy.relations import RAW_PREFIX
from zhongshu.query.plan import build_plan, templatize
from zhongshu.query.service import QueryService
from zhongshu.sources.base import NativeSQL

LITERAL = "zz-lit"  # the key the CTE bodies make up: never a key of a dataset


@dataclass(frozen=True)
class Target:
    """What a generated query reads: a dataset's key column as ``k`` (or only literals), for
    a caller; ``scope`` is the raw SQL (over the source's own tables) of the keys the
    caller's row scope lets through — computed by the test, not by the hub."""

    caller: str
    purpose: str
    dataset: str | None
    key: str = "k"
    scope: tuple[str, str] | None = None  # (source, SQL with {t} for a table's name)


# The row scopes of the demo's grants, written again here over the raw tables.
XIHU_SPOTS = ("city-parking-db", "SELECT spot_id FROM {spots} WHERE district = 'xihu'")
TARGETS = [
    Target("cockpit-xihu", "district-operations", "onstreet.payments", "spot_id", XIHU_SPOTS),
    Target("cockpit-xihu", "district-operations", "onstreet.spots", "spot_id", XIHU_SPOTS),
    Target("cockpit-xihu", "district-operations", "traffic.passages", "camera_id",
           ("traffic-police-db", "SELECT camera_id FROM {checkpoints} WHERE district = 'xihu'")),
    Target("cockpit-xihu", "district-operations", "parking_westlake.sessions", "garage_no",
           ("parking-westlake-db", "SELECT garage_no FROM {garages} WHERE district = 'xihu'")),
    Target("cockpit-xihu", "district-operations", "parking_qiantang.tickets", "lot_id",
           ("parking-qiantang-db", "SELECT lot_id FROM {lots} WHERE area_code = '330106'")),
    Target("app-parking", "convenient-parking", "onstreet.payments", "spot_id"),
    Target("app-parking", "convenient-parking", "parking_westlake.sessions", "garage_no"),
    Target("outsider", "any", "onstreet.payments", "spot_id"),
    Target("outsider", "any", None),
]


# --- the names to try ---------------------------------------------------------------------

@dataclass
class Names:
    """The names a generated query gives its CTEs and aliases, and those it leaves unbound."""

    capture: list[str]  # datasets', raw tables', and the rewritten queries' names
    catalog: list[str]  # what a one-part name reaches in an engine's own catalog
    reserved: list[str] = field(default_factory=list)  # the hub's own names (refused)

    def __repr__(self) -> str:  # Hypothesis prints the arguments of failing examples
        return f"<names: {len(self.capture)} capture, {len(self.catalog)} catalog>"


def rewritten_names(sql: str, dialect: str) -> set[str]:
    """Every table, schema, catalog, alias and column qualifier a rewritten query names.

    >>> sorted(rewritten_names('SELECT a.x FROM "main"."t" AS a, s.u', "sqlite"))
    ['a', 'main', 's', 't', 'u']
    """
    e = sqlglot.parse_one(sql, read=dialect)
    found: set[str] = set()
    for t in e.find_all(exp.Table):
        found.update(p.name for p in (t.this, t.args.get("db"), t.args.get("catalog")) if p)
    found.update(a.name for a in e.find_all(exp.TableAlias) if a.name)
    found.update(c.table for c in e.find_all(exp.Column) if c.table)
    return {n for n in found if n}


def engine_catalog_names() -> list[str]:
    """The relations a one-part name reaches in a bare DuckDB and a bare SQLite."""
    con = duckdb.connect()
    try:
        names = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    finally:
        con.close()
    lite = sqlite3.connect(":memory:")
    try:
        names |= {r[0] for r in lite.execute("SELECT name FROM pragma_table_list").fetchall()}
    finally:
        lite.close()
    return sorted(names)


def collect_names(svc: QueryService) -> Names:
    """Names read from the catalog, the sources and the rewritten SQL of each target."""
    capture: set[str] = set()
    for ds in svc.catalog.datasets.values():
        capture.update(ds.name.split("."))
        if ds.config.table:
            capture.add(ds.config.table)
    for src in svc.catalog.sources.values():
        if isinstance(src, NativeSQL):
            capture.update(src.datasets())
    for t in TARGETS:
        if t.dataset is None or t.caller == "outsider":
            continue
        plan, _ = svc.plan(Caller(svc.catalog.members[t.caller]),
                           f"SELECT * FROM {t.dataset}", t.purpose)
        capture |= rewritten_names(plan.duckdb_sql, "duckdb")
        if plan.native is not None and plan.native_sql is not None:
            capture |= rewritten_names(plan.native_sql, plan.native.dialect)
    reserved = sorted(n for n in capture if n.lower().startswith(RAW_PREFIX))
    keep = sorted(n for n in capture if not n.lower().startswith(RAW_PREFIX) and '"' not in n)
    catalog = engine_catalog_names()
    return Names(capture=keep, catalog=catalog, reserved=reserved)


# --- the grammar ----------------------------------------------------------------------------

Part = str | tuple[int, int]  # text, or (a CTE's index, the letter case it is spelled in)
CASES = (lambda n: n, str.lower, str.upper)


@dataclass
class Generated:
    """A generated query: SQL with slots for its CTE names, and whether a reference escapes
    its scope (the generator's own bookkeeping, not the hub's)."""

    parts: list[Part]
    names: list[str]  # each CTE's name as the caller wrote it
    escapes: bool  # some one-part reference is no CTE visible where it stands

    def sql(self, fresh: bool = False) -> str:
        """The query; ``fresh``: with every CTE renamed to a name no table has."""
        out = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
                continue
            name = f"fresh_cte_{p[0]}" if fresh else self.names[p[0]]
            out.append(f'"{CASES[p[1]](name)}"')
        return "".join(out)


class _Builder:
    """Draws one query of the grammar, tracking which CTEs each point of it sees."""

    def __init__(self, draw: Any, names: Names, target: Target, depth: int) -> None:
        self.draw, self.pool, self.target, self.depth = draw, names, target, depth
        self.ctes: list[str] = []
        self.defined: dict[str, int] = {}  # every CTE so far, wherever it is visible
        self.escapes = False
        self.may_escape = bool(draw(st.booleans()))  # else every reference is in scope

    def slot(self, index: int) -> Part:
        return (index, self.draw(st.integers(0, 2)))

    def define(self, name: str) -> int:
        self.ctes.append(name)
        self.defined.setdefault(name.lower(), len(self.ctes) - 1)
        return len(self.ctes) - 1

    def name(self) -> str:
        return str(self.draw(st.sampled_from(self.pool.capture + self.pool.catalog)))

    def ref(self, visible: dict[str, int], escape: bool = False) -> list[Part]:
        """A one-part reference: to a visible CTE or, escaping its scope, to a CTE of another
        scope or to a name of the engines' catalogs or of the rewritten queries."""
        kinds = ["visible"] * 3 if visible and not escape else []
        if self.may_escape or not kinds:
            kinds += (["elsewhere"] if self.defined else []) + ["catalog"]
        kind = self.draw(st.sampled_from(kinds))
        if kind == "visible":
            return [self.slot(visible[self.draw(st.sampled_from(sorted(visible)))])]
        if kind == "elsewhere":
            name = self.draw(st.sampled_from(sorted(self.defined)))
        else:
            name = self.name().lower()
        if name in visible:  # the same name is defined here too: in scope after all
            return [self.slot(visible[name])]
        self.escapes = True
        if kind == "elsewhere":
            return [self.slot(self.defined[name])]
        return [f'"{CASES[self.draw(st.integers(0, 2))](name)}"']

    def body(self, visible: dict[str, int]) -> list[Part]:
        """A CTE's body: made-up rows shaped like what row scopes read, a governed dataset,
        a copy of a visible CTE, or a reference that escapes."""
        t = self.target
        kinds = ["capture", "other district"] + (["dataset"] if t.dataset else []) + \
            (["copy"] if visible else []) + (["escape"] if self.may_escape else [])
        kind = self.draw(st.sampled_from(kinds))
        if kind == "capture":
            return [f"SELECT 'xihu' AS district, '330106' AS area_code, '{LITERAL}' AS k"]
        if kind == "other district":
            return [f"SELECT 'binjiang' AS district, '{LITERAL}' AS {t.key}, '{LITERAL}' AS k"]
        if kind == "dataset":
            return [f"SELECT {t.key} AS k, {t.key}, 'xihu' AS district FROM {t.dataset}"]
        if kind == "copy":
            return ["SELECT * FROM ", self.slot(visible[self.draw(st.sampled_from(
                sorted(visible)))])]
        return ["SELECT * FROM ", *self.ref(visible, escape=True)]

    def level(self, d: int, visible: dict[str, int]) -> list[Part]:
        """``[WITH …] SELECT sD.k FROM (<level d+1>) AS sD [filter] [UNION ALL (WITH …)]``,
        or the base at the deepest level."""
        visible = dict(visible)
        out: list[Part] = []
        local: set[str] = set()
        for _ in range(self.draw(st.integers(0, 2))):
            name = self.name()
            if name.lower() in local:
                continue
            local.add(name.lower())
            body = self.body(visible)  # sees the outer CTEs and the earlier ones of this WITH
            i = self.define(name)
            out += [", " if len(local) > 1 else "WITH ", self.slot(i), " AS (", *body, ")"]
            visible[name.lower()] = i
        if local:
            out.append(" ")
        if d == self.depth:
            return out + self.base(visible)
        inner = self.level(d + 1, visible)
        out += [f"SELECT s{d}.k FROM (", *inner, f") AS s{d}", *self.filter(d, visible)]
        if self.draw(st.booleans()):
            # a set-operation branch with a CTE of its own: out of scope outside the branch
            i = self.define(str(self.draw(st.sampled_from(self.pool.capture))))
            out += [" UNION ALL (WITH ", self.slot(i), f" AS (SELECT '{LITERAL}' AS k) "
                    "SELECT k FROM ", self.slot(i), " WHERE 1 = 0)"]
        return out

    def refers(self, visible: dict[str, int]) -> bool:
        """Whether to add a reference here: often where CTEs are visible, seldom elsewhere
        (where it can only escape)."""
        if not visible and not self.may_escape:
            return False
        return bool(self.draw(st.integers(0, 1 if visible else 3)) == 0)

    def filter(self, d: int, visible: dict[str, int]) -> list[Part]:
        """A reference in a subquery: EXISTS, correlated EXISTS, NOT IN, or a lateral join."""
        if not self.refers(visible):
            return []
        kind = self.draw(st.sampled_from(["exists", "correlated", "lateral", "in"]))
        ref = self.ref(visible)
        if kind == "exists":
            return [" WHERE EXISTS (SELECT 1 FROM ", *ref, ")"]
        if kind == "correlated":
            return [" WHERE EXISTS (SELECT 1 FROM ", *ref, f" AS r WHERE r.k <> s{d}.k)"]
        if kind == "in":
            return [f" WHERE s{d}.k NOT IN (SELECT k FROM ", *ref, f" WHERE k = '{LITERAL}')"]
        return [", LATERAL (SELECT 1 AS one FROM ", *ref, f" AS l WHERE l.k <> s{d}.k "
                f"LIMIT 1) AS l{d}"]

    def base(self, visible: dict[str, int]) -> list[Part]:
        """The dataset's key as ``k`` (under an alias named like a table), or a literal."""
        t = self.target
        if t.dataset is None:
            out: list[Part] = [f"SELECT '{LITERAL}' AS k"]
        else:
            alias = self.draw(st.sampled_from(self.pool.capture))
            out = [f'SELECT "{alias}".{t.key} AS k FROM {t.dataset} AS "{alias}"']
        if self.refers(visible):
            out += [" WHERE EXISTS (SELECT 1 FROM ", *self.ref(visible), ")"]
        return out


@st.composite
def queries(draw: Any, names: Names, target: Target) -> Generated:
    """A query of the grammar reading ``target`` (see the module's docstring)."""
    b = _Builder(draw, names, target, depth=draw(st.integers(0, 3)))
    parts = b.level(0, {})
    return Generated(parts, b.ctes, b.escapes)


# --- running them -------------------------------------------------------------------------

Outcome = tuple[str, Any]


def outcome(svc: QueryService, target: Target, sql: str, engine: str) -> tuple[Outcome, str]:
    """``("ok", sorted keys)`` or ``(code, None)``, and the path that answered."""
    caller = Caller(svc.catalog.members[target.caller])
    try:
        r = svc.run(caller, sql, target.purpose, engine=engine)
    except ZhongshuError as e:
        return (e.code, None), ""
    return ("ok", sorted(str(v) for v in r.table.column(0).to_pylist())), r.path


def scope_keys(svc: QueryService, target: Target) -> set[str] | None:
    """The keys inside the caller's row scope, read raw with the source's own driver."""
    if target.scope is None:
        return None
    source, sql = target.scope
    src = svc.catalog.sources[source]
    assert isinstance(src, NativeSQL)
    tables = {n: src.native_relation(n).sql(src.dialect)
              for n in ("spots", "checkpoints", "garages", "lots")}
    conn = src.connect_native()
    try:
        _, rows = src.run_native(conn, sql.format(**tables), [], 30)
    finally:
        conn.close()
    return {str(r[0]) for r in rows}


@dataclass
class Tally:
    runs: int = 0
    answered: int = 0
    escapes: int = 0
    paths: dict[str, int] = field(default_factory=dict)


def check(svc: QueryService, target: Target, g: Generated, keys: set[str] | None,
          tally: Tally) -> None:
    """The oracle of the module's docstring, on the DuckDB path and the auto (pushdown) one."""
    sql = g.sql()
    for engine in ("duckdb", "auto"):
        got, path = outcome(svc, target, sql, engine)
        tally.runs += 1
        tally.paths[path] = tally.paths.get(path, 0) + 1
        if g.escapes:
            tally.escapes += 1
            assert got[0] == "dataset_not_found", (sql, got)
            continue
        fresh, _ = outcome(svc, target, g.sql(fresh=True), engine)
        assert got == fresh, (engine, path, sql)
        if got[0] != "ok":
            continue
        tally.answered += 1
        if keys is not None:
            outside = set(got[1]) - keys
            assert not outside, (engine, path, sql, sorted(outside)[:5])


def run_generated(svc: QueryService, names: Names, data: Any, tally: Tally) -> None:
    for target in TARGETS:
        g = data.draw(queries(names, target), label=f"{target.caller} {target.dataset}")
        check(svc, target, g, scope_keys(svc, target), tally)


@pytest.fixture(scope="module")
def names(service: QueryService) -> Names:
    return collect_names(service)


@pytest.fixture(scope="module")
def tally() -> Tally:
    return Tally()


@given(data=st.data())
@settings(max_examples=15, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
def test_generated_names_embedded(service: QueryService, names: Names, data: Any,
                                  tally: Tally) -> None:
    run_generated(service, names, data, tally)


def test_generated_names_were_not_vacuous(tally: Tally) -> None:
    """The generated runs answered, refused escapes, and took the native path too."""
    if not tally.runs:
        pytest.skip("the generated test did not run")
    assert tally.answered >= 60 and tally.escapes >= 30, tally
    assert any(p.startswith("native:") for p in tally.paths), tally


@given(data=st.data())
@settings(max_examples=8, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
def test_generated_names_postgres_and_mariadb(real_service: QueryService, data: Any,
                                             real_tally: Tally) -> None:
    run_generated(real_service, _real_names(real_service), data, real_tally)


def test_generated_names_reached_postgres_and_mariadb(real_service: QueryService,
                                                      real_tally: Tally) -> None:
    """Not vacuous: the generated queries were pushed down to both servers too."""
    if not real_tally.runs:
        pytest.skip("the generated test did not run")
    kinds = {real_service.catalog.sources[p[7:]].kind for p in real_tally.paths
             if p.startswith("native:")}
    assert {"postgres", "mysql"} <= kinds and real_tally.answered >= 30, real_tally


@pytest.fixture(scope="module")
def real_tally() -> Tally:
    return Tally()


_REAL: dict[int, Names] = {}


def _real_names(svc: QueryService) -> Names:
    if id(svc) not in _REAL:
        _REAL[id(svc)] = collect_names(svc)
    return _REAL[id(svc)]


# --- the attacks as found, on every engine --------------------------------------------------

# (dataset, the table its row scope reads, the native kind it lives on with --engines real)
SHADOWED = [("onstreet.payments", "spots", "sqlite"),
            ("traffic.passages", "checkpoints", "postgres"),
            ("parking_westlake.sessions", "garages", "mysql"),
            ("parking_westlake.occupancy", "garages", "mysql"),
            ("parking_qiantang.tickets", "lots", "postgres")]
CAPTURE = "SELECT 'xihu' AS district, '330106' AS area_code"


def _shadow_attacks(svc: QueryService, kinds: set[str]) -> int:
    caller = Caller(svc.catalog.members["cockpit-xihu"])
    native = 0
    for dataset, table, _kind in SHADOWED:
        honest = f"SELECT count(*) AS n FROM {dataset}"
        want = svc.run(caller, honest, "district-operations", engine="duckdb").rows()
        assert want[0][0] > 0, dataset
        for spelling in (table, table.upper(), f'"{table}"'):
            sql = f"WITH {spelling} AS ({CAPTURE}) SELECT count(*) AS n FROM {dataset}"
            for engine in ("auto", "duckdb"):
                r = svc.run(caller, sql, "district-operations", engine=engine)
                assert r.rows() == want, (dataset, spelling, r.path, r.rows(), want)
                if r.path.startswith("native:"):
                    native += 1
                    assert svc.catalog.sources[r.path[7:]].kind in kinds
    return native


def test_a_cte_named_like_a_scoped_table_changes_nothing_sqlite(service: QueryService) -> None:
    assert _shadow_attacks(service, {"sqlite"}) >= 5


def test_a_cte_named_like_a_scoped_table_changes_nothing_real(real_service: QueryService
                                                              ) -> None:
    kinds = {real_service.catalog.sources[r.path[7:]].kind for r in [
        real_service.run(Caller(real_service.catalog.members["cockpit-xihu"]),
                         f"SELECT count(*) FROM {d}", "district-operations")
        for d, _, _ in SHADOWED] if r.path.startswith("native:")}
    assert {"postgres", "mysql"} <= kinds, kinds  # the attack is tried on both engines
    assert _shadow_attacks(real_service, {"sqlite", "postgres", "mysql"}) >= 5


ESCAPES = [
    "SELECT * FROM (WITH duckdb_views AS (SELECT 1) SELECT 1) s, duckdb_views",
    "WITH a AS (WITH pg_settings AS (SELECT 1) SELECT 1) SELECT * FROM pg_settings",
    "SELECT (WITH sqlite_master AS (SELECT 1) SELECT 1), * FROM sqlite_master",
    "(WITH duckdb_tables AS (SELECT 1 AS x) SELECT x FROM duckdb_tables) UNION ALL "
    "SELECT 1 FROM duckdb_tables",
    "SELECT 1 WHERE EXISTS (WITH payments AS (SELECT 1) SELECT 1) AND EXISTS "
    "(SELECT 1 FROM payments)",
    "WITH a AS (SELECT * FROM duckdb_settings), duckdb_settings AS (SELECT 1) SELECT * FROM a",
    "WITH duckdb_columns AS (SELECT * FROM duckdb_columns) SELECT * FROM duckdb_columns",
    "SELECT * FROM (SELECT 1 AS x) AS duckdb_views, duckdb_views",
    "SELECT * FROM (VALUES (1)) v(x), LATERAL (WITH spots AS (SELECT 1) SELECT 1) y, spots",
    "SELECT * FROM (SELECT 1 AS x) AS p, LATERAL (SELECT * FROM p) q",
]


@pytest.mark.parametrize("sql", ESCAPES)
def test_a_cte_out_of_its_scope_is_no_table(service: QueryService, sql: str) -> None:
    for member in ("outsider", "cockpit-city"):
        caller = Caller(service.catalog.members[member])
        with pytest.raises(ZhongshuError) as e:
            service.run(caller, sql, "city-operations")
        assert e.value.code == "dataset_not_found", (member, e.value.message)


def test_the_hubs_own_names_are_refused(service: QueryService, names: Names) -> None:
    """Every reserved name a rewritten query uses, as a caller's CTE, alias or table."""
    assert names.reserved, "the rewritten queries name marker tables"
    caller = Caller(service.catalog.members["cockpit-xihu"])
    for name in names.reserved + ["__raw__cte0", "__RAW__cte1"]:
        for sql in (f"WITH {name} AS (SELECT 1) SELECT * FROM {name}",
                    f"SELECT * FROM onstreet.spots AS {name}",
                    f"SELECT * FROM {name}"):
            with pytest.raises(ZhongshuError) as e:
                service.run(caller, sql, "district-operations")
            assert e.value.code == "statement_not_allowed", (sql, e.value.message)


def test_two_ctes_of_one_name_are_refused(service: QueryService) -> None:
    caller = Caller(service.catalog.members["cockpit-city"])
    with pytest.raises(ZhongshuError) as e:
        service.run(caller, "WITH a AS (SELECT 1), A AS (SELECT 2) SELECT * FROM a",
                    "city-operations")
    assert e.value.code == "statement_not_allowed"


def test_ctes_reach_the_engines_under_the_hubs_names(service: QueryService) -> None:
    caller = Caller(service.catalog.members["cockpit-xihu"])
    sql = ("WITH spots AS (SELECT spot_id FROM onstreet.spots), c AS (SELECT * FROM spots) "
           "SELECT c.spot_id FROM c ORDER BY 1 LIMIT 3")
    plan, _ = service.plan(caller, sql, "district-operations")
    for text, dialect in ((plan.duckdb_sql, "duckdb"), (plan.native_sql, "sqlite")):
        assert text is not None
        e = sqlglot.parse_one(text, read=dialect)
        for cte in e.find_all(exp.CTE):
            assert cte.alias.startswith(RAW_PREFIX), text
        for t in e.find_all(exp.Table):
            assert t.db or t.name.startswith(RAW_PREFIX), (t.sql(), text)
    for engine in ("auto", "duckdb"):
        got = service.run(caller, sql, "district-operations", engine=engine).rows()
        assert [r[0] for r in got] == ["SP0001", "SP0002", "SP0003"], engine


# --- the engines' own rule the fix rests on ---------------------------------------------------

QUALIFIED = ["WITH t AS (SELECT 'cte' AS v) SELECT v FROM {s}.t",
             "WITH t AS (SELECT 'cte' AS v) SELECT v FROM \"{s}\".\"t\"",
             "WITH {s} AS (SELECT 'cte' AS v) SELECT v FROM {s}.t"]


def _no_cte_binds(cursor: Any, schema: str, quote: str = '"') -> None:
    for sql in QUALIFIED:
        cursor.execute(sql.format(s=schema).replace('"', quote))
        assert [tuple(r) for r in cursor.fetchall()] == [("table",)], sql


def test_no_embedded_engine_lets_a_cte_stand_in_for_a_qualified_name() -> None:
    lite = sqlite3.connect(":memory:")
    lite.execute("CREATE TABLE t(v)")
    lite.execute("INSERT INTO t VALUES ('table')")
    _no_cte_binds(lite.cursor(), "main")
    con = duckdb.connect()
    con.execute("CREATE TABLE t(v VARCHAR); INSERT INTO t VALUES ('table')")
    _no_cte_binds(con.cursor(), "main")
    con.execute("WITH t AS (SELECT 'cte' AS v) SELECT v FROM memory.main.t")
    assert con.fetchall() == [("table",)]


def test_no_server_lets_a_cte_stand_in_for_a_qualified_name(real_service: QueryService
                                                            ) -> None:
    for src in real_service.catalog.sources.values():
        if not isinstance(src, NativeSQL) or src.kind not in ("postgres", "mysql"):
            continue
        conn = src.connect_native()
        try:
            table = src.datasets()[0]
            rel = src.native_relation(table).sql(src.dialect)
            bare = exp.to_identifier(table, quoted=True).sql(src.dialect)
            _, want = src.run_native(conn, f"SELECT count(*) FROM {rel}", [], 30)
            _, got = src.run_native(conn, f"WITH {bare} AS (SELECT 1 AS v FROM (SELECT 1 AS "
                                          f"z) AS d WHERE 1 = 0) SELECT count(*) FROM {rel}",
                                    [], 30)
            assert [tuple(r) for r in got] == [tuple(r) for r in want], (src.kind, rel)
        finally:
            conn.close()


def test_every_native_relation_is_qualified(service: QueryService) -> None:
    for src in service.catalog.sources.values():
        if isinstance(src, NativeSQL):
            assert src.native_relation("t").args.get("db") is not None, src.kind


def test_govern_marks_no_cte_it_cannot_see(service: QueryService) -> None:
    """The rewritten query keeps a CTE's hub name only where the CTE is visible."""
    caller = Caller(service.catalog.members["cockpit-city"])
    g = govern("WITH a AS (SELECT 1 AS x) SELECT * FROM a UNION ALL (WITH b AS (SELECT 2 AS x) "
               "SELECT * FROM b)", caller=caller, purpose="city-operations",
               catalog=service.catalog, grants=service.grants)
    sql = g.expression.sql("duckdb")
    assert sql == ("WITH __raw__cte0 AS (SELECT 1 AS x) SELECT * FROM __raw__cte0 AS a "
                   "UNION ALL (WITH __raw__cte1 AS (SELECT 2 AS x) SELECT * FROM "
                   "__raw__cte1 AS b)"), sql


# --- a view's columns bind to the view's own relations ----------------------------------------

class _ScopedGrants:
    """Grants stand-in: every dataset readable whole, within ``scope`` (for one dataset)."""

    def __init__(self, dataset: str, scope: str) -> None:
        self.dataset, self.scope = dataset, scope

    def visible(self, caller: Caller, dataset: Any) -> bool:
        return True

    def decide(self, caller: Caller, dataset: Any, purpose: str) -> Access:
        columns = tuple(c.name for c in dataset.columns)
        if dataset.name != self.dataset or caller.name == dataset.owner:
            return Access(dataset, None, columns, {}, None)
        # a row scope is always a grant's, and is read as that grant's owner
        grant = Grant(id="test-scope", owner=dataset.owner, consumer=caller.name,
                      dataset=dataset.name, purposes=(purpose,), columns=columns, masking={},
                      row_scope=self.scope, expires=None, rate_limit=None)
        return Access(dataset, grant, columns, {}, self.scope)


def _answers(svc: QueryService, scope: str, sql: str) -> tuple[set[Any], str]:
    """The answers of ``sql`` on both paths, with ``scope`` on traffic.passages, and the SQL
    pushed down."""
    caller = Caller(svc.catalog.members["cockpit-city"])
    template = templatize(sql)
    g = govern(template.text, caller=caller, purpose="city-operations", catalog=svc.catalog,
               grants=_ScopedGrants("traffic.passages", scope),  # type: ignore[arg-type]
               parameters=template.parameters)
    plan = build_plan(template, g, 1000, None)
    assert plan.native is not None and plan.native_sql is not None
    got = {str(svc.execute(plan, template, engine).rows()) for engine in ("auto", "duckdb")}
    return got, plan.native_sql


def test_row_scope_columns_bind_to_the_view(service: QueryService) -> None:
    """An aliased row scope answers the same on both paths, and a CTE named like any table
    or alias it uses changes nothing."""
    aliased = ("camera_id IN (SELECT c.camera_id FROM traffic.checkpoints AS c "
               "WHERE c.district = 'xihu')")
    honest, _ = _answers(service, aliased, "SELECT count(*) FROM traffic.passages AS c")
    assert len(honest) == 1, honest
    for cte in ("checkpoints", "c", "k", "passages"):
        got, _ = _answers(service, aliased, f"WITH {cte} AS (SELECT 'xihu' AS district, "
                          "1000 AS speed_kmh, 'cam-000a' AS camera_id) "
                          "SELECT count(*) FROM traffic.passages AS c")
        assert got == honest, (cte, got, honest)


def test_a_correlated_row_scope_is_refused_fail_closed(service: QueryService) -> None:
    """A row scope's subquery may not refer to the row being scoped (in the consumer's query
    that row has no name the scope could use safely): the consumer is refused, fail-closed,
    and shown nothing of the scope; the owner is told at load and by `catalog check`
    (tests/policy/test_owners_sql.py)."""
    correlated = ("EXISTS (SELECT 1 FROM traffic.checkpoints AS k WHERE k.district = 'xihu' "
                  "AND k.camera_id = 'cam-000a' AND speed_kmh > 50)")
    with pytest.raises(ZhongshuError) as e:
        _answers(service, correlated, "SELECT count(*) FROM traffic.passages AS c")
    assert e.value.code == "dataset_unavailable" and e.value.status == 503
    assert "cam-000a" not in e.value.message and "speed_kmh" not in e.value.message


def test_a_row_scope_reading_an_undeclared_column_is_refused(service: QueryService) -> None:
    """The consumer's query is fine; the owner's scope is not: 503 dataset_unavailable (not
    the engine's error, not the column's name), and the owner is told at load."""
    with pytest.raises(ZhongshuError) as e:
        _answers(service, "no_such_column = 1", "SELECT count(*) FROM traffic.passages")
    assert e.value.code == "dataset_unavailable"
    assert "no_such_column" not in e.value.message  # the scope is the owner's, not shown
