"""Owners' SQL is checked like a query, as its author (``zhongshu.policy.owners``).

An owner tries to read another owner's data through each piece of SQL it writes — a row
scope, a dataset's ``query =`` or column ``expr``, a cockpit panel — by file and by the
grants API: each is refused with the file and line, or a ``400`` naming the dataset; a row
scope that reads through its owner's own grant sees what that grant shows its owner, and
stops when the grant goes. The cases in ``cases/owner_sql/`` give each piece with the code
it is refused with (and the equivalent query of its author, which ``test_cases.py`` runs);
a generated test builds row scopes from a small grammar and compares what the consumer gets
with a plain-Python oracle.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from hypothesis import HealthCheck, event, given, seed, settings
from hypothesis import strategies as st

from tests.conftest import RunningHub, readable_dir
from zhongshu.errors import BadRequest, ConfigError, DatasetUnavailable, ZhongshuError
from zhongshu.node import Node, Stores
from zhongshu.policy.identity import Caller
from zhongshu.policy.owners import check_definition_sql, check_row_scope, panel_checker
from zhongshu.query.service import QueryService

CASES = sorted((Path(__file__).parent / "cases" / "owner_sql").glob("*.toml"))
EXAMPLES = 40  # generated row scopes per run (fixed seed): about 15 s here


def _outcome(call: Callable[[], object]) -> str:
    try:
        call()
    except ZhongshuError as e:
        return e.code
    return "ok"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_owner_sql_case(service: QueryService, path: Path) -> None:
    case = tomllib.loads(path.read_text(encoding="utf-8"))
    cat, grants, author = service.catalog, service.grants, case["caller"]
    kind, piece = case["kind"], case["piece"]
    if kind == "row_scope":
        ds = cat.datasets[case["dataset"]]
        assert ds.owner == author, "a row scope is written by its dataset's owner"
        got = _outcome(lambda: check_row_scope(piece, owner=author, dataset=ds,
                                               purposes=[case["purpose"]], catalog=cat,
                                               grants=grants))
    elif kind in ("dataset_query", "column_expr"):
        which = "query" if kind == "dataset_query" else "expr"
        got = _outcome(lambda: check_definition_sql(which, piece, owner=author, catalog=cat,
                                                    grants=grants))
    else:
        assert kind == "panel"
        got = _outcome(lambda: panel_checker(cat)(piece, case["datasets"]))
    assert got == case["refused"], (path.name, got)


def _copy(demo_dir: Path, root: Path, append: dict[str, str]) -> Path:
    shutil.copytree(demo_dir, root, ignore=shutil.ignore_patterns("state", "ledger.pin"))
    for member, text in append.items():
        with (root / "members" / f"{member}.toml").open("a", encoding="utf-8") as f:
            f.write(text)
    return root



# --- by the grants API ------------------------------------------------------------------------

def _client(hub: RunningHub, member: str) -> httpx.Client:
    return httpx.Client(base_url=hub.url, timeout=30,
                        headers={"Authorization": f"Bearer {hub.token(member)}"})


def test_by_api_refused_naming_the_dataset_and_read_through_the_owners_grant(
        own_hub: RunningHub) -> None:
    with _client(own_hub, "traffic-police") as police, _client(own_hub, "parks") as parks, \
            _client(own_hub, "civil-affairs") as civil, \
            _client(own_hub, "outsider") as outsider:
        for scope in ("camera_id IN (SELECT hospital_id FROM health.visits)",
                      "plate IN (SELECT id_number FROM credit.scores)",
                      "camera_id IN (WITH t AS (SELECT hospital_id FROM health.visits) "
                      "SELECT hospital_id FROM t)",
                      "camera_id = getenv('HOME')",
                      "no_such_column = 1",
                      "EXISTS (SELECT 1 FROM traffic.checkpoints c WHERE c.camera_id = "
                      "passages.camera_id)"):
            r = police.post("/v1/grants", json={
                "consumer": "outsider", "datasets": ["traffic.passages"],
                "purposes": ["research"], "row_scope": scope})
            assert r.status_code == 400, (scope, r.text)
            assert r.json()["error"]["code"] == "bad_request"
            assert "`traffic.passages`" in r.json()["error"]["message"], r.text
        # through a grant it holds, an owner's row scope reads what that grant shows it
        r = civil.post("/v1/grants", json={
            "consumer": "parks", "datasets": ["civil.districts"], "purposes": ["research"],
            "row_scope": "district = 'xihu'"})
        assert r.status_code == 201, r.text
        dependency = r.json()["id"]
        r = parks.post("/v1/grants", json={
            "consumer": "outsider", "datasets": ["parks.trees"], "purposes": ["research"],
            "row_scope": "district IN (SELECT district FROM civil.districts)"})
        assert r.status_code == 201, r.text
        gid = r.json()["id"]
        sql = "SELECT DISTINCT district FROM parks.trees"
        answer = outsider.post("/v1/query", json={"sql": sql, "purpose": "research"}).json()
        assert answer["rows"] == [["xihu"]], answer
        # a purpose the owner's grant does not name: refused when made
        r = parks.post("/v1/grants", json={
            "consumer": "outsider", "datasets": ["parks.trees"], "purposes": ["marketing"],
            "row_scope": "district IN (SELECT district FROM civil.districts)"})
        assert r.status_code == 400 and "`parks.trees`" in r.text and "marketing" in r.text
        # the owner's grant goes: the consumer's grant is not served through it any more
        assert civil.delete(f"/v1/grants/{dependency}").status_code == 200
        time.sleep(1.1)  # the hub re-reads grants at most once a second
        r = outsider.post("/v1/query", json={"sql": sql, "purpose": "research"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "dataset_unavailable"
        assert gid in r.json()["error"]["message"] and "civil" not in r.json()["error"][
            "message"], r.text


def test_by_cli_grants_add_is_refused(demo_dir: Path, city_tmp: Path) -> None:
    root = _copy(demo_dir, city_tmp / "city", {})
    res = subprocess.run([sys.executable, "-m", "zhongshu.cli", "grants", "add", "--owner",
                          "traffic-police", "--consumer", "outsider", "--dataset",
                          "traffic.passages", "--purpose", "research", "--row-scope",
                          "camera_id IN (SELECT hospital_id FROM health.visits)",
                          "--dir", str(root)], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ))
    assert res.returncode == 1 and "`traffic.passages`" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


# --- by file ----------------------------------------------------------------------------------

BAD_GRANT = '''
[[grants]]
consumer = "outsider"
purposes = ["research"]
datasets = ["traffic.passages"]
row_scope = "camera_id IN (SELECT hospital_id FROM health.visits WHERE fee_yuan > 100)"
'''
BAD_PANEL = '''[[panels]]
id = "sneaky"
title = "Sneaky"
kind = "number"
datasets = ["traffic.passages"]
sql = """SELECT count(*) AS n FROM traffic.passages
WHERE plate IN (SELECT id_number FROM health.visits)"""
'''
# two owners whose row scopes read through each other's grants
CYCLE = {"parks": '''
[[grants]]
consumer = "civil-affairs"
purposes = ["research"]
datasets = ["parks.trees"]
row_scope = "district IN (SELECT district FROM civil.districts)"
''', "civil-affairs": '''
[[grants]]
consumer = "parks"
purposes = ["research"]
datasets = ["civil.districts"]
row_scope = "district IN (SELECT district FROM parks.trees)"
'''}


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zhongshu.cli", "catalog", "check", "--dir",
                           str(root)], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ))


def _line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_by_file_row_scope_and_panel(demo_dir: Path, city_tmp: Path,
                                     caplog: pytest.LogCaptureFixture) -> None:
    root = _copy(demo_dir, city_tmp / "city", {"traffic-police": BAD_GRANT, **CYCLE})
    (root / "cockpit.toml").write_text(BAD_PANEL, encoding="utf-8")
    res = _check(root)
    assert res.returncode == 1, res.stdout + res.stderr
    members = root / "members" / "traffic-police.toml"
    scope_line = _line_of(members, "SELECT hospital_id FROM health.visits")
    lines = [line for line in res.stdout.splitlines() if line.startswith("refused")]
    assert any(f"{members}:{scope_line}: " in line and "`traffic.passages`" in line and
               "`health.visits`" in line for line in lines), res.stdout
    panel = root / "cockpit.toml"
    assert any(f"{panel}:{_line_of(panel, 'sql =')}: " in line and "health.visits" in line
               for line in lines), res.stdout
    # a serving hub loads it, but never answers through it, and says so loudly
    with caplog.at_level(logging.ERROR, logger="zhongshu.policy"), \
            Node.open(root, stores=Stores.memory(), monitor=False) as node:
        service = node.query
        assert any(g.dataset == "traffic.passages" and g.consumer == "outsider"
                   for g, _ in service.grants.unavailable.values())
        assert any(f"{members}:{scope_line}" in r.getMessage() for r in caplog.records)
        outsider = Caller(service.catalog.members["outsider"])
        with pytest.raises(DatasetUnavailable):
            service.run(outsider, "SELECT count(*) FROM traffic.passages", "research")
        # row scopes that read through each other are refused when run, not looped
        parks = Caller(service.catalog.members["parks"])
        with pytest.raises(DatasetUnavailable):
            service.run(parks, "SELECT count(*) FROM civil.districts", "research")


# what the catalog refuses stops the loading at once; what the firewall refuses is listed
# (each piece on its own line) and stops a hub when its grants are loaded
DEFINITIONS = {
    "catalog": [("traffic-police", 'table = "checkpoints"',
                 'query = "SELECT * FROM health_db.main.visits"',
                 "not a table of the dataset's own source"),
                ("parking-qiantang", "expr = \"replace(car_plate, '-', '')\"",
                 'expr = "(SELECT max(plate) FROM passages)"', "not an expression")],
    "firewall": [("traffic-police", 'table = "checkpoints"',
                  'query = "SELECT *, current_setting(\'temp_directory\') AS x FROM checkpoints"',
                  "function `current_setting` is not allowed"),
                 ("parking-qiantang", "expr = \"replace(car_plate, '-', '')\"",
                  "expr = \"coalesce(getenv('HOME'), car_plate)\"",
                  "function `getenv` is not allowed")],
}


@pytest.mark.parametrize("case", [*(("catalog", i) for i in range(2)), ("firewall", None)],
                         ids=["catalog-query", "catalog-expr", "firewall-both"])
def test_by_file_dataset_definition(demo_dir: Path, city_tmp: Path,
                                    case: tuple[str, int | None]) -> None:
    group, index = case
    edits = DEFINITIONS[group] if index is None else [DEFINITIONS[group][index]]
    root = _copy(demo_dir, city_tmp / "city", {})
    expected = []
    for member, old, new, words in edits:
        path = root / "members" / f"{member}.toml"
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        expected.append((f"{path}:{_line_of(path, new)}: ", words))
    res = _check(root)
    assert res.returncode == 1
    output = (res.stdout + res.stderr).splitlines()
    for where, words in expected:
        said = [s for s in output if where in s]
        assert len(said) == 1 and words in said[0], res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    # a hub refuses to start on it
    with pytest.raises(ConfigError, match="|".join(re.escape(w) for _, w in expected)):
        with Node.open(root, stores=Stores.memory(), monitor=False) as node:
            _ = node.query


# --- in process: what a row scope may say -----------------------------------------------------

@pytest.fixture(scope="module")
def own_service(demo_dir: Path) -> Iterator[QueryService]:
    """A private copy of the demo city, its grants in memory; civil-affairs grants parks its
    districts for research, Xihu and Binjiang only, names redacted."""
    with readable_dir("zs-owners-") as base, \
            Node.open(_copy(demo_dir, base / "city", {}), stores=Stores.memory(),
                      monitor=False) as node:
        service = node.query
        service.grants.add("civil-affairs", {
            "consumer": "parks", "datasets": ["civil.districts"], "purposes": ["research"],
            "row_scope": "district IN ('xihu', 'binjiang')",
            "columns": ["district", "name", "population"],
            "masking": {"name": "redact"}}, actor="test")
        service.refresh_grants(force=True)
        yield service


def _add(service: QueryService, owner: str, spec: dict[str, Any]) -> str:
    gid = service.grants.add(owner, spec, actor="test")
    service.refresh_grants(force=True)
    return gid


def _revoke(service: QueryService, owner: str, gid: str) -> None:
    service.grants.revoke(owner, gid, actor="test")
    service.refresh_grants(force=True)


def test_scope_correlated_to_the_scoped_row_is_refused(own_service: QueryService) -> None:
    spec = {"consumer": "outsider", "datasets": ["parks.trees"], "purposes": ["research"]}
    for scope in ("EXISTS (SELECT 1 FROM parks.tree_surveys s WHERE s.tree_id = "
                  "trees.tree_id)",
                  "EXISTS (SELECT 1 FROM civil.districts d WHERE d.name = species)"):
        with pytest.raises(BadRequest, match="refer to the row being scoped"):
            own_service.grants.add("parks", {**spec, "row_scope": scope}, actor="test")
    # the dataset's own columns, qualified by its name, are its raw rows
    gid = _add(own_service, "parks", {**spec, "row_scope": "trees.district = 'xihu'"})
    try:
        rows = own_service.run(Caller(own_service.catalog.members["outsider"]),
                               "SELECT DISTINCT district FROM parks.trees", "research")
        assert rows.table.to_pylist() == [{"district": "xihu"}]
    finally:
        _revoke(own_service, "parks", gid)


# --- generated row scopes ---------------------------------------------------------------------

@dataclass(frozen=True)
class Piece:
    """A generated row scope: its SQL, whether the owner may say it, and what it means."""

    sql: str
    allowed: bool
    holds: Callable[[dict[str, Any], dict[str, Any]], bool]  # (tree row, world) → bool


ALLOWED_CALLS = [("lower(species) = 'ginkgo'", lambda r: r["species"].lower() == "ginkgo"),
                 ("length(species) > 6", lambda r: len(r["species"]) > 6),
                 ("abs(girth_cm) >= 100", lambda r: abs(r["girth_cm"]) >= 100),
                 ("coalesce(district, 'x') = 'xihu'", lambda r: r["district"] == "xihu"),
                 ("upper(district) = 'BINJIANG'", lambda r: r["district"] == "binjiang")]
FORBIDDEN_CALLS = ["getenv('HOME')", "current_setting('threads')", "version()",
                   "read_text('/etc/passwd')", "my_udf(district)",
                   "zs_pseudonym('outsider|research|', district)", "current_user",
                   "(SELECT count(*) FROM duckdb_settings())", "pg_read_file('/etc/passwd')"]
SIMPLE = [("district = 'xihu'", lambda r: r["district"] == "xihu"),
          ("girth_cm > 120", lambda r: r["girth_cm"] > 120),
          ("species IN ('plane', 'willow')", lambda r: r["species"] in ("plane", "willow"))]


def _through_owners_grant(n: int) -> list[Piece]:
    """Subqueries over civil.districts, which parks reads through its grant: Xihu and
    Binjiang only, names redacted (a CTE may be named after a dataset)."""
    def among(rows: Callable[[dict[str, Any]], bool]) -> Callable[[dict[str, Any],
                                                                   dict[str, Any]], bool]:
        return lambda r, w: r["district"] in {d["district"] for d in w["parks_view"]
                                              if rows(d)}

    def big(d: dict[str, Any]) -> bool:
        return bool(d["population"] > n)

    return [
        Piece(f"district IN (SELECT district FROM civil.districts WHERE population > {n})",
              True, among(big)),
        Piece("district IN (SELECT district FROM civil.districts WHERE name IS NOT NULL)",
              True, among(lambda d: d["name"] is not None)),
        Piece(f"district IN (WITH districts AS (SELECT district, population FROM "
              f"civil.districts) SELECT district FROM districts WHERE population > {n})",
              True, among(big)),
        Piece("district IN (WITH trees AS (SELECT district FROM civil.districts) "
              "SELECT district FROM trees)", True, among(lambda d: True)),
        Piece("EXISTS (SELECT 1 FROM civil.districts WHERE district = 'xiaoshan')", True,
              lambda r, w: any(d["district"] == "xiaoshan" for d in w["parks_view"])),
    ]


def _pieces(other_datasets: list[tuple[str, str]]) -> st.SearchStrategy[Piece]:
    own = st.sampled_from(SIMPLE + ALLOWED_CALLS).map(
        lambda p: Piece(p[0], True, lambda r, w, f=p[1]: bool(f(r))))
    through = st.integers(0, 2_500_000).flatmap(lambda n: st.sampled_from(
        _through_owners_grant(n)))
    others = st.sampled_from(other_datasets).map(lambda d: Piece(
        f"CAST(district AS VARCHAR) IN (SELECT CAST({d[1]} AS VARCHAR) FROM {d[0]})", False,
        lambda r, w: False))
    calls = st.sampled_from(FORBIDDEN_CALLS).map(
        lambda c: Piece(f"CAST(district AS VARCHAR) = CAST({c} AS VARCHAR)", False,
                        lambda r, w: False))
    files = st.just(Piece("district IN (SELECT column0 FROM read_csv('/etc/passwd'))", False,
                          lambda r, w: False))
    atom = st.one_of(own, through, others, calls, files)

    def combine(parts: list[Piece], op: str) -> Piece:
        if op == "NOT":
            p = parts[0]
            return Piece(f"NOT ({p.sql})", p.allowed, lambda r, w: not p.holds(r, w))
        sql = f" {op} ".join(f"({p.sql})" for p in parts)
        fold = all if op == "AND" else any
        return Piece(sql, all(p.allowed for p in parts),
                     lambda r, w: fold(p.holds(r, w) for p in parts))

    return st.recursive(atom, lambda inner: st.tuples(
        st.lists(inner, min_size=1, max_size=3), st.sampled_from(["AND", "OR", "NOT"])).map(
        lambda t: combine(*t)), max_leaves=4)


@pytest.fixture(scope="module")
def world(own_service: QueryService) -> dict[str, Any]:
    """The raw rows, read without the hub: the trees, and civil.districts as parks sees it."""
    data = own_service.city.root / "data"
    con = duckdb.connect()
    trees = [dict(zip(("tree_id", "species", "district", "girth_cm"), row, strict=True))
             for row in con.execute("SELECT tree_id, species, district, girth_cm FROM "
                                    f"read_parquet('{data / 'parks' / 'trees.parquet'}')")
             .fetchall()]
    districts = con.execute("SELECT district, name, population FROM "
                            f"read_csv('{data / 'civil-affairs' / 'districts.csv'}')").fetchall()
    con.close()
    view = [{"district": d, "name": None, "population": p} for d, _name, p in districts
            if d in ("xihu", "binjiang")]
    return {"trees": trees, "parks_view": view}


@pytest.fixture(scope="module")
def other_datasets(own_service: QueryService) -> list[tuple[str, str]]:
    """Every dataset of another owner than parks that parks holds no grant on for research,
    with its first column."""
    return [(d.name, d.columns[0].name) for d in own_service.catalog.datasets.values()
            if d.owner != "parks" and d.name != "civil.districts"]


@seed(20260115)
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(data=st.data())
def test_generated_row_scopes_are_refused_or_read_only_what_the_owner_may(
        own_service: QueryService, world: dict[str, Any],
        other_datasets: list[tuple[str, str]], data: st.DataObject) -> None:
    piece = data.draw(_pieces(other_datasets), label="row scope")
    spec = {"consumer": "outsider", "datasets": ["parks.trees"], "purposes": ["research"],
            "row_scope": piece.sql}
    try:
        gid = _add(own_service, "parks", spec)
    except BadRequest as e:
        event("refused")
        assert not piece.allowed, f"refused a row scope its owner may write: {e.message}"
        assert "row_scope on `parks.trees`" in e.message, e.message
        return
    try:
        assert piece.allowed, f"accepted a row scope its owner may not write: {piece.sql}"
        event("accepted, reads through parks' grant" if "civil." in piece.sql else "accepted")
        answer = own_service.run(Caller(own_service.catalog.members["outsider"]),
                                 "SELECT tree_id FROM parks.trees", "research")
        got = sorted(r["tree_id"] for r in answer.table.to_pylist())
        want = sorted(t["tree_id"] for t in world["trees"] if piece.holds(t, world))
        assert got == want, piece.sql
    finally:
        _revoke(own_service, "parks", gid)
