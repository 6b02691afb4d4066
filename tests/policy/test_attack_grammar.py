"""Generated attack classes (issue 15), each answer checked against an independent oracle.

Queries come from a grammar of the attack constructs (``tests/policy/grammar.py``): CTEs at
every nesting level — named neutrally, after every dataset, raw table and name the hub's own
rewritten SQL uses (collected from the catalog and from ``explain``'s ``governed_sql`` and
``native_sql``, not from a hand list), or referenced outside the scope that defines them — set
operations, correlated and LATERAL subqueries, windows, CASE, VALUES, casts and every allowed
function. Each runs as a demo consumer (both cockpits, both apps, the outsider and departments
reading their own and others' data) on every execution path: DuckDB, and pushdown to SQLite,
PostgreSQL and MariaDB.

The oracle (``tests/policy/oracle.py``) imports nothing of the hub: it builds each dataset as
the caller may see it from the raw rows and the member files, loads it into a fresh DuckDB
under the dataset's name, and runs the caller's SQL there. The hub must answer the same
multiset or refuse with a protocol error; no raw personal or sensitive value the caller may
not see appears in an answer or an error message; no message names the hub's internals.

Budget: fixed seed, the example counts below per path (about 3 minutes for the file on 2
cores, the server paths marked ``server``). ``scripts/attack_nightly.py`` runs the same with
more examples (``ZS_ATTACK_EXAMPLES``, ``ZS_ATTACK_SEED``, ``ZS_ATTACK_PATHS``,
``ZS_ATTACK_SUMMARY``).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from sqlglot import exp

from tests.policy import grammar, oracle
from tests.policy.grammar import Builder, Literals, Table
from zhongshu.errors import RateLimited, ZhongshuError
from zhongshu.policy.functions import ALLOWED_FUNCTIONS
from zhongshu.policy.identity import Caller
from zhongshu.query.service import QueryService

# examples per path and attack class (ZS_ATTACK_EXAMPLES overrides all of them)
EXAMPLES = {"general": 40, "capture": 30, "scope": 25}
CALLERS = ["cockpit-city", "cockpit-xihu", "app-parking", "app-medical", "outsider",
           "traffic-police", "health"]
_ENV_EXAMPLES = int(os.environ.get("ZS_ATTACK_EXAMPLES", "0") or 0)
_ENV_SEED = int(os.environ.get("ZS_ATTACK_SEED", "0") or 0)
_ENV_PATHS = {p for p in os.environ.get("ZS_ATTACK_PATHS", "").split(",") if p}
_SUMMARY = os.environ.get("ZS_ATTACK_SUMMARY")
_SHRINK = os.environ.get("ZS_ATTACK_SHRINK") == "1"
# words that name the hub's internals: never in a message (the caller's own text aside)
INTERNALS = ("__raw__", "src_", "zs_pseudonym", "/data/", ".sqlite", ".parquet", "|fixed",
             "|day", "|month", "password", "memory.")



@dataclass
class Context:
    """One caller × purpose: its oracle database, its views and what it must never see."""

    con: duckdb.DuckDBPyConnection
    views: dict[str, oracle.View]
    forbidden: set[str]
    literals: Literals
    lengths: set[int] = field(default_factory=set)


@dataclass
class Setup:
    """The oracle's side of one hub (embedded or with real servers)."""

    service: QueryService
    root: Path
    extra_names: list[str] = field(default_factory=list)
    city: oracle.CityFiles = field(init=False)
    oracle: oracle.Oracle = field(init=False)
    names: list[str] = field(init=False)
    hot: list[str] = field(init=False)  # the names the hub's own rewritten SQL uses
    hot_by: dict[tuple[str, str, str], set[str]] = field(init=False)  # … per dataset read
    columns_of: dict[str, list[tuple[str, str]]] = field(init=False)
    contexts: dict[tuple[str, str], Context] = field(default_factory=dict)
    pseudonyms: dict[str, dict[str, str]] = field(default_factory=dict)
    structure: list[str] = field(default_factory=list)  # pseudonym structure violations

    def __post_init__(self) -> None:
        self.city = oracle.CityFiles(self.root)
        self.oracle = oracle.Oracle(self.city)
        self.names = self._names()
        self.columns_of = {}
        for ds in self.city.datasets.values():
            cols = [(c.name, oracle.family(c.type)) for c in ds.columns]
            self.columns_of.setdefault(ds.table, cols)
            self.columns_of.setdefault(ds.short, cols)

    def purposes(self, member: str) -> list[str]:
        return self.city.purposes(member) or ["city-operations"]

    def _names(self) -> list[str]:
        """Every name a rewritten query uses (explain's governed and native SQL, for each
        caller's datasets), every raw table, dataset name and namespace, and the engines'
        own catalog names; duplicates kept once, the hub's own names first."""
        seen: dict[str, None] = {}
        self.hot = []
        self.hot_by = {}
        for member in CALLERS:
            caller = Caller(self.service.catalog.members[member])
            for purpose in self.purposes(member):
                for name in self.city.views(member, purpose):
                    try:
                        e = self.service.explain(caller, f"SELECT * FROM {name}", purpose)
                    except ZhongshuError:
                        continue
                    for text in (e["governed_sql"], e["native_sql"]):
                        for n in _sql_names(text or ""):
                            seen.setdefault(n, None)
                            if n not in self.hot and not n.startswith("__raw__"):
                                self.hot.append(n)
                            if not n.startswith("__raw__"):
                                self.hot_by.setdefault((member, purpose, name), set()).add(n)
        for ds in self.city.datasets.values():
            for n in (ds.table, ds.short, ds.namespace):
                seen.setdefault(n.lower(), None)
        con = duckdb.connect()
        for (n,) in con.execute("SELECT view_name FROM duckdb_views() WHERE internal UNION "
                                "SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall():
            seen.setdefault(n.lower(), None)
        # SQLite's schema tables, as its documentation names them
        for n in ("sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_sequence"):
            seen.setdefault(n, None)
        for n in self.extra_names:
            seen.setdefault(n.lower(), None)
        names = [n for n in seen if n.isidentifier() or n.replace("_", "a").isalnum()]
        return [n for n in names if not n.startswith("__raw__")] + ["__raw__traffic__passages"]

    def context(self, member: str, purpose: str) -> Context:
        key = (member, purpose)
        if key in self.contexts:
            return self.contexts[key]
        views = self.city.views(member, purpose)
        caller = Caller(self.service.catalog.members[member])
        for name, view in views.items():
            masked = [c for c in view.columns
                      if view.masking.get(c, {}).get("kind") == "pseudonym"]
            if not masked:
                continue
            got = _run(self.service, caller, f"SELECT {', '.join(view.columns)} FROM {name}",
                       purpose, "duckdb").table.to_pylist()
            raw = self.oracle.rows(view)
            for c in masked:
                known = self.pseudonyms.setdefault(key_of(member, purpose, view, c), {})
                self.structure += [f"{member}/{name}.{c}: {p}" for p in
                                   oracle.learn_pseudonyms(raw, got, [c], known)]
        con = self.oracle.connect(views, self.pseudonyms,
                                  lambda v, c: key_of(member, purpose, v, c), self.names)
        visible = self.oracle.visible_values(views)
        forbidden = self.oracle.private - visible
        ctx = Context(con, views, forbidden, _literals(self.oracle, views, forbidden),
                      {len(v) for v in forbidden if len(v) >= 7})
        self.contexts[key] = ctx
        return ctx


def key_of(member: str, purpose: str, view: oracle.View, column: str) -> str:
    """Pseudonyms are keyed per consumer × purpose (× rotation), as documented."""
    return f"{member}|{purpose}|{view.masking[column].get('rotate') or 'fixed'}"


def _sql_names(text: str) -> Iterator[str]:
    """Table names, their schemas and catalogs, aliases and CTE names in ``text``."""
    if not text:
        return
    dialect = "mysql" if "`" in text else "duckdb"
    try:
        tree = sqlglot.parse_one(text, read=dialect)
    except sqlglot.errors.ParseError:
        return
    for t in tree.find_all(exp.Table):
        for part in (t.name, t.db, t.catalog, t.alias):
            if part:
                yield part.lower()
    for a in tree.find_all(exp.TableAlias, exp.CTE):
        if a.alias:
            yield a.alias.lower()


def _literals(orc: oracle.Oracle, views: dict[str, oracle.View], forbidden: set[str]
              ) -> Literals:
    """Values to compare with: what the caller sees (never a forbidden one), and a few
    constants, in a fixed order."""
    text: set[str] = {"xihu", "", "a", "cam-0001", "浙A00000"}
    num: set[str] = {"0", "1", "2", "-1", "100", "2.5"}
    times: set[str] = {"TIMESTAMP '2026-01-01 00:00:00'"}
    for view in views.values():
        for r in orc.rows(view)[:40]:
            for c, v in r.items():
                if v is None or view.masking.get(c, {}).get("kind") == "pseudonym":
                    continue
                if isinstance(v, bool):
                    continue
                if isinstance(v, (int, float)) or type(v).__name__ == "Decimal":
                    num.add(str(v))
                elif hasattr(v, "isoformat"):
                    times.add(f"TIMESTAMP '{v.isoformat(sep=' ')}'")
                elif str(v) not in forbidden:
                    text.add(str(v))
    return Literals(text=[grammar.sql_str(t) for t in sorted(text)][:200],
                    num=sorted(num)[:120], time=sorted(times)[:60])


def _run(service: QueryService, caller: Caller, sql: str, purpose: str, engine: str) -> Any:
    """``service.run``, waiting out a grant's rate limit (the suite runs many queries)."""
    for _ in range(120):
        try:
            return service.run(caller, sql, purpose, engine=engine)
        except RateLimited:
            time.sleep(1.0)
    raise AssertionError("rate limited for two minutes")


# --- one attempt ----------------------------------------------------------------------------

@dataclass
class Finding:
    path: str
    caller: str
    purpose: str
    sql: str
    what: str

    def __str__(self) -> str:
        return f"[{self.path}] {self.caller}/{self.purpose}: {self.what}\n    {self.sql}"


def attempt(setup: Setup, path: str, engine: str, member: str, purpose: str, sql: str,
            loose: bool, stats: Counter[str]) -> Finding | None:
    """Run ``sql`` on the hub and in the oracle; the finding if they disagree or data leaks."""
    ctx = setup.context(member, purpose)
    caller = Caller(setup.service.catalog.members[member])

    def finding(what: str) -> Finding:
        stats["finding"] += 1
        return Finding(path, member, purpose, sql, what)

    try:
        cur = ctx.con.execute(sql)
        want: list[tuple[Any, ...]] | None = cur.fetchall()
        oracle_error = None
    except duckdb.Error as e:
        want, oracle_error = None, str(e).split("\n")[0][:120]
    try:
        res = _run(setup.service, caller, sql, purpose, engine)
        got = res.rows()
    except ZhongshuError as e:
        stats["refused"] += 1
        stats[f"refused:{e.code}"] += 1
        msg = e.message
        if e.code == "internal" or e.status >= 500 and e.code not in (
                "query_timeout", "source_unavailable"):
            return finding(f"refused with a server error {e.code}: {msg[:200]}")
        leaked = [v for v in ctx.forbidden if len(v) >= 5 and v in msg]
        if leaked:
            return finding(f"error message shows a raw personal value: {msg[:200]}")
        inside = [w for w in INTERNALS if w in msg.lower() and w not in sql.lower()]
        if inside:
            return finding(f"error message names internals {inside}: {msg[:200]}")
        return None
    except Exception as e:  # anything but a protocol error is a finding
        return finding(f"not a protocol error: {type(e).__name__}: {str(e)[:200]}")
    stats["answered"] += 1
    stats[f"path:{res.path.split(':')[0]}"] += 1
    if any(oracle.holds(cell, ctx.forbidden, ctx.lengths) for cell in oracle.cells(got)):
        return finding(f"answer holds a raw personal value (on {res.path})")
    if oracle_error is not None:
        return finding(f"answered on {res.path} what the caller's own view cannot answer "
                       f"({oracle_error}); {len(got)} rows")
    assert want is not None
    if res.truncated:
        stats["truncated"] += 1
        return None
    if loose:
        stats["loose"] += 1
        if len(got) != len(want):
            return finding(f"{len(got)} rows on {res.path}, the oracle {len(want)}")
        return None
    g, w = oracle.multiset(got), oracle.multiset(want)
    if g != w:
        extra = [r for r in g if r not in w][:2]
        missing = [r for r in w if r not in g][:2]
        return finding(f"answer differs on {res.path}: {len(g)} rows vs {len(w)}; "
                       f"extra {extra}, missing {missing}")
    stats["equal"] += 1
    return None


# --- exploring a path -----------------------------------------------------------------------

PATH_ENGINE = {"duckdb": ("duckdb", None), "sqlite": ("auto", "sqlite"),
               "postgres": ("auto", "postgres"), "mysql": ("auto", "mysql")}


def _tables(setup: Setup, member: str, purpose: str, kind: str | None,
            pick: int) -> list[Table]:
    """The datasets one query reads: on a pushdown path, those of one source of that kind
    (so the hub can push the query down); on DuckDB, any. Mostly the caller's own views."""
    views = setup.city.views(member, purpose)
    datasets = list(setup.city.datasets.values())
    if kind is not None:
        sources = sorted({d.source["name"] for d in datasets if d.source["kind"] == kind})
        mine = [s for s in sources if any(v.dataset.source["name"] == s
                                          for v in views.values())]
        src = (mine or sources)[pick % len(mine or sources)]
        datasets = [d for d in datasets if d.source["name"] == src]
    out = []
    for d in datasets:
        declared = [(c.name, oracle.family(c.type)) for c in d.columns]
        v = views.get(d.name)
        cols = [(c, f) for c, f in declared if v is not None and c in v.columns]
        if v is None:
            cols = declared
        rows = setup.oracle.raw.execute(
            f'SELECT count(*) FROM "{d.namespace}"."{d.short}"').fetchone()
        out.append(Table(d.name, cols, small=bool(rows and rows[0] < 2000),
                         all_cols=declared))
    # the caller's views three times as often, small tables (a few thousand rows) twice: a
    # cross join of two large ones costs seconds and shows nothing more
    visible = [t for t in out if t.name in views]
    weighted = [t for t in visible for _ in range(3 if t.small else 1)] + \
        [t for t in out if t.small]
    return weighted or out


def explore(setup: Setup, path: str, mode: str, examples: int) -> tuple[Counter[str],
                                                                      list[Finding]]:
    """Run ``examples`` generated queries of ``mode`` on ``path``; the counts and findings."""
    engine, kind = PATH_ENGINE[path]
    stats: Counter[str] = Counter()
    findings: list[Finding] = []
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if _SHRINK else [])

    @settings(max_examples=examples, deadline=None, database=None,
              derandomize=_ENV_SEED == 0, phases=phases,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def one(data: Any) -> None:
        callers = CALLERS + ["cockpit-xihu"] * 3 if mode == "capture" else CALLERS
        member = data.draw(st.sampled_from(callers), label="caller")
        purpose = data.draw(st.sampled_from(setup.purposes(member)), label="purpose")
        tables = _tables(setup, member, purpose, kind, data.draw(st.integers(0, 99)))
        ctx = setup.context(member, purpose)
        hot = sorted({n for t in tables for n in setup.hot_by.get((member, purpose, t.name), ())})
        b = Builder(data, tables, ctx.literals, mode, setup.names, setup.columns_of,
                    hot or setup.hot)
        if mode == "scope":
            sql = b.out_of_scope()
        else:
            sql, _ = b.query(top=True)
        stats["examples"] += 1
        f = attempt(setup, path, engine, member, purpose, sql, b.loose, stats)
        if f is not None:
            findings.append(f)
            if _SHRINK:
                raise AssertionError(str(f))

    if _ENV_SEED:
        one = seed(_ENV_SEED)(one)
    started = time.monotonic()
    try:
        one()
    except AssertionError:
        if not _SHRINK:
            raise
    stats["seconds"] = int(time.monotonic() - started)
    if _SUMMARY:
        with open(_SUMMARY, "a", encoding="utf-8") as f:
            f.write(json.dumps({"path": path, "mode": mode, "stats": dict(stats),
                                "findings": [vars(x) for x in findings]},
                               ensure_ascii=False) + "\n")
    return stats, findings


def check(setup: Setup, path: str, mode: str) -> None:
    if _ENV_PATHS and path not in _ENV_PATHS:
        pytest.skip(f"path {path} not in ZS_ATTACK_PATHS")
    stats, findings = explore(setup, path, mode, _ENV_EXAMPLES or EXAMPLES[mode])
    assert stats["examples"] > 0
    report = "\n".join(str(f) for f in findings[:8])
    assert not findings, f"{len(findings)} findings ({dict(stats)}):\n{report}"


# --- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def embedded(service: QueryService, demo_dir: Path) -> Setup:
    return Setup(service, demo_dir)


@pytest.fixture(scope="module")
def real(real_service: QueryService, real_dir: Path) -> Setup:
    return Setup(real_service, real_dir, extra_names=_server_names(real_dir))


def _server_names(root: Path) -> list[str]:
    """The one-part names PostgreSQL resolves in its own catalog (pg_catalog), read from
    the server itself."""
    import psycopg

    city = oracle.CityFiles(root)
    src = next(d.source for d in city.datasets.values() if d.source["kind"] == "postgres")
    conn = {k: src[k] for k in ("host", "port", "user")}
    with psycopg.connect(dbname=src["database"], **conn) as pg:
        rows = pg.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON "
                          "n.oid = c.relnamespace WHERE n.nspname = 'pg_catalog' AND "
                          "c.relkind IN ('r', 'v') ORDER BY 1").fetchall()
    return [r[0] for r in rows]


# --- the tests --------------------------------------------------------------------------------

def test_the_grammar_writes_every_allowed_function() -> None:
    assert ALLOWED_FUNCTIONS <= grammar.signatures(), \
        sorted(ALLOWED_FUNCTIONS - grammar.signatures())


def test_pseudonyms_have_the_documented_structure(embedded: Setup) -> None:
    for member in CALLERS:
        for purpose in embedded.purposes(member):
            embedded.context(member, purpose)
    assert embedded.pseudonyms, "the demo grants pseudonymised columns"
    assert not embedded.structure, embedded.structure[:5]


@pytest.mark.parametrize("path", ["duckdb", "sqlite"])
def test_generated_queries_answer_as_the_oracle(embedded: Setup, path: str) -> None:
    check(embedded, path, "general")


@pytest.mark.parametrize("path", ["duckdb", "sqlite"])
def test_ctes_named_after_rewritten_names_capture_nothing(embedded: Setup, path: str) -> None:
    check(embedded, path, "capture")


def every_rewritten_name(setup: Setup, path: str) -> None:
    """For each caller, each dataset it reads and each name the hub's rewritten SQL of that
    dataset uses: a CTE of that name (with the columns of the table it is named after, one
    literal row) in front of a plain count of the dataset."""
    if _ENV_PATHS and path not in _ENV_PATHS:
        pytest.skip(f"path {path} not in ZS_ATTACK_PATHS")
    engine, kind = PATH_ENGINE[path]
    stats: Counter[str] = Counter()
    findings = []
    for (member, purpose, dataset), names in sorted(setup.hot_by.items()):
        ds = setup.city.datasets[dataset]
        if kind is not None and ds.source["kind"] != kind:
            continue
        ctx = setup.context(member, purpose)
        for i, name in enumerate(sorted(names)):
            cols = setup.columns_of.get(name, [("c0", grammar.N)])
            row = ", ".join(f"{ctx.literals.of(f if f == grammar.N else grammar.T, i + j)} "
                            f"AS {c}" for j, (c, f) in enumerate(cols))
            sql = f"WITH {name} AS (SELECT {row}) SELECT count(*) AS n FROM {dataset}"
            f = attempt(setup, path, engine, member, purpose, sql, False, stats)
            if f is not None:
                findings.append(f)
    assert stats["answered"] > 0, dict(stats)
    report = "\n".join(str(f) for f in findings[:8])
    assert not findings, f"{len(findings)} findings ({dict(stats)}):\n{report}"


@pytest.mark.parametrize("path", [
    "duckdb", "sqlite"])
def test_every_rewritten_name_as_a_cte_captures_nothing(embedded: Setup, path: str) -> None:
    every_rewritten_name(embedded, path)


@pytest.mark.parametrize("path", [
    "duckdb",
    "sqlite"])
def test_names_resolve_only_in_their_scope(embedded: Setup, path: str) -> None:
    check(embedded, path, "scope")


def test_every_allowed_function_answers_as_the_oracle(embedded: Setup) -> None:
    """Each allowed function once, in a fixed shape, as cockpit-city on DuckDB."""
    stats: Counter[str] = Counter()
    findings = []
    member, purpose = "cockpit-city", "city-operations"
    ctx = embedded.context(member, purpose)
    tables = [t for t in _tables(embedded, member, purpose, None, 0)
              if t.name in ("onstreet.spots", "traffic.signals", "parking_westlake.sessions")]
    for name in sorted(ALLOWED_FUNCTIONS):
        for variant in range(2):
            b = Builder(random.Random(f"{name}/{variant}"), tables, ctx.literals)
            sql = _one_function(b, name)
            f = attempt(embedded, "duckdb", "duckdb", member, purpose, sql, b.loose, stats)
            if f is not None:
                findings.append(f)
    assert stats["equal"] + stats["loose"] > len(ALLOWED_FUNCTIONS) // 2, dict(stats)
    assert not findings, "\n".join(str(f) for f in findings[:8])


def _one_function(b: Builder, name: str) -> str:
    rel = b.from_item(grammar.Builder.MAX_DEPTH, {})
    rels = [rel]
    if name in grammar.AGGREGATES:
        shapes, res = grammar.AGGREGATES[name]
        args, fams = b.args(shapes, rels, 3, 0)
        order = f" ORDER BY {args[0]}" if name in grammar.ORDERED_AGGREGATES else ""
        if name in grammar.LOOSE:
            b.loose = True
        return f"SELECT CAST({name}({', '.join(args)}{order}) AS VARCHAR) AS c FROM {rel.sql}"
    if name in grammar.WINDOWS:
        shapes, _ = grammar.WINDOWS[name]
        args, _ = b.args(shapes, rels, 3, 0)
        order = ", ".join(f"{rel.alias}.{c}" for c, _ in rel.cols)
        return (f"SELECT CAST({name}({', '.join(args)}) OVER (ORDER BY {order}) AS VARCHAR) "
                f"AS c FROM {rel.sql}")
    if name in grammar.SCALARS:
        shapes, _ = grammar.SCALARS[name]
        args, _ = b.args([s if not s.startswith("=") else grammar.N for s in shapes], rels,
                         3, 0)
        return f"SELECT CAST({name}({', '.join(args)}) AS VARCHAR) AS c FROM {rel.sql}"
    if name == "try_cast":
        return f"SELECT TRY_CAST({b.expr(rels, grammar.T, 3, 0)} AS BIGINT) AS c FROM {rel.sql}"
    if name == "extract":
        return f"SELECT extract(year FROM {b.expr(rels, grammar.TM, 3, 0)}) AS c FROM {rel.sql}"
    if name == "position":
        return f"SELECT position('a' IN {b.expr(rels, grammar.T, 3, 0)}) AS c FROM {rel.sql}"
    if name == "struct_pack":
        return f"SELECT CAST(struct_pack(x := {b.expr(rels, grammar.N, 3, 0)}) AS VARCHAR) " \
               f"AS c FROM {rel.sql}"
    assert name == "unnest", name
    return f"SELECT unnest(list_value({b.expr(rels, grammar.N, 3, 0)}, 1)) AS c FROM {rel.sql}"


@pytest.mark.server
@pytest.mark.parametrize("path", ["postgres", "mysql"])
def test_generated_queries_answer_as_the_oracle_on_servers(real: Setup, path: str) -> None:
    check(real, path, "general")


@pytest.mark.server
@pytest.mark.parametrize("path", ["postgres", "mysql"])
def test_ctes_named_after_rewritten_names_capture_nothing_on_servers(real: Setup,
                                                                    path: str) -> None:
    check(real, path, "capture")


@pytest.mark.server
@pytest.mark.parametrize("path", [
    "postgres", "mysql"])
def test_names_resolve_only_in_their_scope_on_servers(real: Setup, path: str) -> None:
    check(real, path, "scope")


@pytest.mark.server
@pytest.mark.parametrize("path", [
    "postgres", "mysql"])
def test_every_rewritten_name_as_a_cte_captures_nothing_on_servers(real: Setup,
                                                                   path: str) -> None:
    every_rewritten_name(real, path)
