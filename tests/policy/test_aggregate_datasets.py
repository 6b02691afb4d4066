"""Aggregate datasets (issue 16): what a grant with an ``aggregate_only`` column lets its
holder infer, generated and checked against the raw rows read without the hub.

A private hub over a copy of the demo city grants ``health.visits`` to ``stats-bureau`` for
``research-small`` as an aggregate dataset: dimensions ``hospital_id`` and ``dept``, subject
``patient_id``, ``fee_yuan`` aggregate-only with ``k = 3`` (the test city is small: 360
visits, 182 patients, 96 cells) and ``clip = [0, 400]`` (a third of the fees are above it).

The oracle reads ``data/health.sqlite`` with ``sqlite3`` and computes, in plain Python, what
the design promises (``zhongshu.policy.aggregate``): cells of both dimensions with fewer than
k distinct patients dropped, then the filters, then groups of fewer than k patients dropped;
sums of fees clipped to the bounds. Every generated query is either answered exactly so, or
refused with a 4xx whose message carries no raw value; every answered group is a union of
cells of at least k patients. Fixed seed (derandomized), 200 examples (about 20 s).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import copy_demo_city
from zhongshu.errors import QueryInvalid, ZhongshuError
from zhongshu.node import Node, Stores
from zhongshu.policy.identity import Caller
from zhongshu.query.inference import AGGREGATE_FAILED
from zhongshu.query.service import QueryService

K, LO, HI = 3, 0.0, 400.0
PURPOSE = "research-small"
DIMS = ("hospital_id", "dept")
EXAMPLES = 200


@pytest.fixture(scope="module")
def hub(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueryService]:
    root = tmp_path_factory.mktemp("agg") / "city"
    copy_demo_city(demo_dir, root)  # without state and the log key's pin
    with Node.open(root, stores=Stores.memory(), monitor=False) as node:
        service = node.query
        service.grants.add("health", {
            "consumer": "stats-bureau", "datasets": ["health.visits"], "purposes": [PURPOSE],
            "columns": ["hospital_id", "dept", "fee_yuan", "arrived_at"],
            "dimensions": list(DIMS), "subject": "patient_id",
            "masking": {"fee_yuan": {"kind": "aggregate_only", "k": K, "clip": [LO, HI]}}},
            actor="test")
        service.refresh_grants(force=True)
        yield service


@pytest.fixture(scope="module")
def raw(demo_dir: Path) -> list[dict[str, Any]]:
    """The visits as the department stores them, read without the hub."""
    con = sqlite3.connect(f"file:{demo_dir / 'data' / 'health.sqlite'}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute("SELECT * FROM visits")]
    con.close()
    return rows


def _secrets(raw: list[dict[str, Any]]) -> set[str]:
    """Raw values no answer or message may carry: ids, id numbers, visit fees."""
    out: set[str] = set()
    for r in raw:
        out |= {str(r["patient_id"]), str(r["id_number"]), f"{r['fee_yuan']:.2f}"}
    return out


# --- the oracle ---------------------------------------------------------------------------

def _cells(raw: list[dict[str, Any]]) -> dict[tuple[Any, ...], set[str]]:
    cells: dict[tuple[Any, ...], set[str]] = {}
    for r in raw:
        if r["patient_id"] is not None:
            cells.setdefault(tuple(r[d] for d in DIMS), set()).add(r["patient_id"])
    return cells


def _keeps(r: dict[str, Any], filters: list[tuple[str, bool, list[str]]]) -> bool:
    return all((r[d] in values) == keep for d, keep, values in filters)


def oracle(raw: list[dict[str, Any]], group: list[str], aggs: list[str],
           filters: list[tuple[str, bool, list[str]]]) -> dict[tuple[Any, ...], list[Any]]:
    """group key → [aggregates] as the design promises, computed from the raw rows."""
    big = {c for c, who in _cells(raw).items() if len(who) >= K}
    rows = [r for r in raw if r["patient_id"] is not None
            and tuple(r[d] for d in DIMS) in big and _keeps(r, filters)]
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[d] for d in group), []).append(r)
    out: dict[tuple[Any, ...], list[Any]] = {}
    for key, rs in groups.items():
        if len({r["patient_id"] for r in rs}) < K:
            continue
        fees = [min(max(float(r["fee_yuan"]), LO), HI) for r in rs if r["fee_yuan"] is not None]
        vals: list[Any] = []
        for a in aggs:
            vals.append(len(rs) if a == "count(*)" else len(fees) if a.startswith("count")
                        else sum(fees) if a.startswith("sum") else
                        (sum(fees) / len(fees) if fees else None))
        out[key] = vals
    return out


# --- generated queries --------------------------------------------------------------------

AGGS = ("count(*)", "count(fee_yuan)", "sum(fee_yuan)", "avg(fee_yuan)")
ONE_VALUE = ("min", "max", "arg_max", "arg_min", "any_value", "first", "last", "list",
             "array_agg", "string_agg", "mode", "median", "quantile_cont", "quantile_disc",
             "approx_quantile", "approx_count_distinct", "histogram", "stddev", "variance",
             "bit_or", "bool_or", "count_if", "product", "max_by", "entropy", "kurtosis")


def _attacks(pid: str, value: str) -> list[str]:
    """Every shape issue 16 names, written against one patient and one dimension value."""
    t = "health.visits"
    return [
        f"SELECT * FROM {t}",
        f"SELECT fee_yuan FROM {t}",
        f"SELECT hospital_id, fee_yuan FROM {t} GROUP BY hospital_id, fee_yuan",
        f"SELECT sum(fee_yuan * 1e308 * 1e308) AS s FROM {t}",
        f"SELECT sum(CAST(fee_yuan AS TINYINT)) AS s FROM {t}",
        f"SELECT sum(fee_yuan / 0) AS s FROM {t}",
        f"SELECT sum(1 / (fee_yuan - {value})) AS s FROM {t}",
        f"SELECT sum(CAST(patient_id AS BIGINT)) AS s FROM {t}",
        f"SELECT count(*) FROM {t} WHERE CAST(patient_id AS INT) > 0",
        f"SELECT sum(CASE WHEN patient_id = '{pid}' THEN fee_yuan END) AS s FROM {t}",
        f"SELECT hospital_id, sum(CASE WHEN patient_id = '{pid}' THEN 1 END) AS n FROM {t} "
        "GROUP BY hospital_id",
        f"SELECT patient_id, count(*) AS n FROM {t} GROUP BY patient_id",
        f"SELECT arrived_at, count(*) AS n FROM {t} GROUP BY arrived_at",
        f"SELECT count(*) AS n FROM {t} WHERE patient_id <> '{pid}'",
        f"SELECT count(*) AS n FROM {t} WHERE hospital_id = '{value}' AND patient_id <> '{pid}'",
        f"SELECT sum(fee_yuan) AS s FROM {t} WHERE arrived_at < '2026-11-24 09:00:00'",
        f"SELECT count(*) AS n FROM {t} WHERE fee_yuan > {value}",
        f"SELECT dept, count(*) AS n FROM {t} GROUP BY dept HAVING count(*) < 5",
        f"SELECT dept, count(*) AS n FROM {t} GROUP BY dept QUALIFY n < 5",
        f"SELECT dept, sum(fee_yuan) OVER (PARTITION BY dept) AS s FROM {t}",
        f"SELECT dept, count(*) AS n FROM {t} GROUP BY ROLLUP (dept)",
        f"SELECT dept, count(*) AS n FROM {t} GROUP BY ALL",
        f"SELECT DISTINCT dept FROM {t}",
        f"SELECT count(DISTINCT fee_yuan) AS n FROM {t}",
        f"SELECT sum(DISTINCT fee_yuan) AS n FROM {t}",
        f"SELECT count(*) FILTER (WHERE fee_yuan > 300) AS n FROM {t}",
        f"WITH v AS (SELECT * FROM {t}) SELECT count(*) AS n FROM v",
        f"SELECT count(*) AS n FROM (SELECT * FROM {t} WHERE patient_id = '{pid}')",
        f"SELECT count(*) AS n FROM {t} WHERE dept IN (SELECT dept FROM {t})",
        f"SELECT count(*) AS n FROM {t} a JOIN {t} b ON a.dept = b.dept",
        f"SELECT count(*) AS n FROM {t} UNION ALL SELECT count(*) FROM {t}",
        f"SELECT count(*) AS n FROM {t} WHERE dept = dept",
        f"SELECT count(*) AS n FROM {t} WHERE dept = '{value}' OR hospital_id = '{value}'",
        f"SELECT count(*) AS n FROM {t} WHERE lower(dept) = '{value}'",
        f"SELECT dept || '{value}' AS d, count(*) AS n FROM {t} GROUP BY 1",
        f"SELECT count(*) AS n FROM {t} TABLESAMPLE 10%",
        f"SELECT count(*) AS n FROM {t} ORDER BY fee_yuan",
        *(f"SELECT {fn}(fee_yuan) AS v FROM {t}" for fn in ONE_VALUE),
        *(f"SELECT dept, {fn}(fee_yuan, 0.5) AS v FROM {t} GROUP BY dept"
          for fn in ("quantile_cont", "approx_quantile", "arg_max", "string_agg")),
    ]


@st.composite
def asks(draw: st.DrawFn, raw: list[dict[str, Any]]) -> tuple[str, Any]:
    """A query: an honest aggregate request (with what the oracle needs) or an attack."""
    values = {d: sorted({r[d] for r in raw}) + ["nowhere"] for d in DIMS}
    if draw(st.booleans()):
        pid = draw(st.sampled_from(sorted({r["patient_id"] for r in raw})))
        value = draw(st.sampled_from(values["hospital_id"] + ["1e308", "0"]))
        return draw(st.sampled_from(_attacks(pid, value))), None
    group = draw(st.lists(st.sampled_from(DIMS), unique=True, max_size=2))
    aggs = draw(st.lists(st.sampled_from(AGGS), unique=True, min_size=1, max_size=4))
    filters: list[tuple[str, bool, list[str]]] = []
    for d in draw(st.lists(st.sampled_from(DIMS), unique=True, max_size=2)):
        vs = draw(st.lists(st.sampled_from(values[d]), unique=True, min_size=1, max_size=3))
        filters.append((d, draw(st.booleans()), vs))
    where = []
    for d, keep, vs in filters:
        quoted = ", ".join(f"'{v}'" for v in vs)
        where.append(f"{d} {'IN' if keep else 'NOT IN'} ({quoted})" if len(vs) > 1 else
                     f"{d} {'=' if keep else '<>'} {quoted}")
    sql = "SELECT " + ", ".join([*group, *(f"{a} AS a{i}" for i, a in enumerate(aggs))]) + \
        " FROM health.visits"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if group:
        sql += " GROUP BY " + ", ".join(group)
    return sql, (group, aggs, filters)


def test_generated_asks_are_answered_as_promised_or_refused_cleanly(
        hub: QueryService, raw: list[dict[str, Any]]) -> None:
    who = Caller(hub.catalog.members["stats-bureau"])
    secrets = _secrets(raw)
    cells = _cells(raw)
    seen = {"answered": 0, "refused": 0}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(ask=asks(raw))
    def one(ask: tuple[str, Any]) -> None:
        sql, honest = ask
        try:
            result = hub.run(who, sql, PURPOSE)
        except ZhongshuError as e:
            assert 400 <= e.status < 500 or e.code == "query_invalid", (sql, e.code)
            assert not any(s in e.message for s in secrets), (sql, e.message)
            assert honest is None, (sql, e.code, e.message)  # an honest ask is answered
            seen["refused"] += 1
            return
        assert honest is not None, f"an attack was answered: {sql}"
        group, aggs, filters = honest
        got = {tuple(r[:len(group)]): r[len(group):] for r in result.rows()}
        want = oracle(raw, group, aggs, filters)
        assert set(got) == set(want), sql
        for key, vals in want.items():
            for g, w in zip(got[key], vals, strict=True):
                assert (g is None and w is None) or math.isclose(g, w, rel_tol=1e-9), sql
        # every answered group is a union of cells of at least k patients, after filters
        for key in got:
            members = [c for c in cells if all(
                c[DIMS.index(d)] == v for d, v in zip(group, key, strict=True))]
            rows = [r for r in raw if tuple(r[d] for d in DIMS) in members and
                    _keeps(r, filters) and r["patient_id"] is not None and
                    len(cells[tuple(r[d] for d in DIMS)]) >= K]
            assert len({r["patient_id"] for r in rows}) >= K, (sql, key)
        seen["answered"] += 1

    one()
    assert seen["answered"] >= 40 and seen["refused"] >= 40, seen


def test_every_attack_shape_is_refused_without_a_value(hub: QueryService,
                                                       raw: list[dict[str, Any]]) -> None:
    """Each shape of issue 16 once, deterministically: refused, no value in the message."""
    who = Caller(hub.catalog.members["stats-bureau"])
    secrets = _secrets(raw)
    pid = raw[0]["patient_id"]
    for sql in _attacks(pid, raw[0]["hospital_id"]):
        with pytest.raises(ZhongshuError) as e:
            hub.run(who, sql, PURPOSE)
        assert e.value.status < 500 and not any(s in e.value.message for s in secrets), sql


def test_small_cells_never_leak_through_marginals(hub: QueryService,
                                                  raw: list[dict[str, Any]]) -> None:
    """The marginal of a hospital minus its answered cells is zero: a suppressed cell cannot
    be recovered by differencing two GROUP BY sets (cells are suppressed before grouping)."""
    who = Caller(hub.catalog.members["stats-bureau"])
    by_h = {r[0]: r[1] for r in hub.run(who, "SELECT hospital_id, count(*) AS n FROM "
                                        "health.visits GROUP BY hospital_id", PURPOSE).rows()}
    fine: dict[str, int] = {}
    for h, _d, n in hub.run(who, "SELECT hospital_id, dept, count(*) AS n FROM health.visits "
                                 "GROUP BY hospital_id, dept", PURPOSE).rows():
        fine[h] = fine.get(h, 0) + n
    assert by_h and all(by_h[h] == fine.get(h, 0) for h in by_h)
    small = [c for c, who_ in _cells(raw).items() if len(who_) < K]
    assert small, "the test city must have cells to suppress"


def test_a_filter_of_another_type_matches_nothing(hub: QueryService) -> None:
    """No error path in a filter: a number compared with a text dimension matches nothing
    (an error raised only when some row reaches the comparison would tell which did)."""
    who = Caller(hub.catalog.members["stats-bureau"])
    for value in ("5", "1e308", "'2026-13-45'"):
        rows = hub.run(who, f"SELECT dept, count(*) AS n FROM health.visits WHERE hospital_id = "
                            f"{value} GROUP BY dept", PURPOSE).rows()
        assert rows == []


def test_an_engine_error_on_an_aggregate_plan_says_nothing(hub: QueryService,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """Defence in depth: whatever the engine says about the hub's own SQL, the caller gets
    one fixed message (``query.inference.fixed_aggregate_errors``)."""
    who = Caller(hub.catalog.members["stats-bureau"])

    def fail(*_a: Any, **_k: Any) -> Any:
        raise QueryInvalid("the query could not be run: value 'P99157129' is out of range")

    monkeypatch.setattr(hub.executor, "duckdb", fail)
    with pytest.raises(QueryInvalid) as e:
        hub.run(who, "SELECT count(*) AS n FROM health.visits", PURPOSE)
    assert e.value.message == AGGREGATE_FAILED
    plain = Caller(hub.catalog.members["cockpit-city"])
    with pytest.raises(QueryInvalid) as e:  # other plans keep the engine's (scrubbed) words
        hub.run(plain, "SELECT count(*) AS n FROM health.hospitals", "city-operations",
                engine="duckdb")
    assert e.value.message != AGGREGATE_FAILED


def test_the_demo_grant_is_an_aggregate_dataset(service: QueryService,
                                                raw: list[dict[str, Any]]) -> None:
    """The demo's own grant (k = 10 over hospital × department): at the tests' scale every
    cell is smaller than 10 patients, so nothing is answered — and nothing raw is readable."""
    who = Caller(service.catalog.members["stats-bureau"])
    assert max(len(v) for v in _cells(raw).values()) < 10
    r = service.run(who, "SELECT dept, count(*) AS n, sum(fee_yuan) AS s FROM health.visits "
                         "GROUP BY dept", "research")
    assert r.rows() == []
    with pytest.raises(ZhongshuError) as e:
        service.run(who, "SELECT * FROM health.visits", "research")
    assert e.value.code == "column_not_granted"


def test_over_http_the_grant_says_what_it_is_and_refusals_are_recorded(own_hub: Any) -> None:
    import httpx

    c = httpx.Client(base_url=own_hub.url, timeout=30,
                     headers={"Authorization": f"Bearer {own_hub.token('stats-bureau')}"})
    try:
        [g] = c.get("/v1/datasets/health.visits").json()["grants"]
        assert g["dimensions"] == ["hospital_id", "dept"] and g["k"] == 10
        assert g["masking"] == {"fee_yuan": "aggregate_only"}
        r = c.post("/v1/query", json={"sql": "SELECT * FROM health.visits",
                                      "purpose": "research"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "column_not_granted"
        assert r.json()["receipt"] is not None  # the refusal is on the ledger
        ok = c.post("/v1/query", json={"sql": "SELECT dept, count(*) AS n FROM health.visits "
                                              "GROUP BY dept", "purpose": "research"})
        assert ok.status_code == 200 and ok.json()["rows"] == []  # every cell is < 10 here
    finally:
        c.close()


@pytest.mark.parametrize("spec", [
    {"dimensions": ["plate"], "masking": {"plate": "pseudonym"}},
    {"dimensions": ["fee"], "masking": {"fee": {"kind": "aggregate_only", "k": 5}}},
    {"masking": {"fee": {"kind": "aggregate_only", "clip": [10, 1]}}},
    {"masking": {"fee": {"kind": "aggregate_only", "clip": [0, 1e300]}}},
    {"masking": {"fee": {"kind": "aggregate_only", "clip": [0, float("inf")]}}},
    {"masking": {"fee": {"kind": "aggregate_only", "k": 1}}},
    {"lookups_per_day": -1},
])
def test_grants_that_would_defeat_the_design_are_refused(spec: dict[str, Any]) -> None:
    from pydantic import ValidationError

    from zhongshu.config import GrantConfig

    with pytest.raises(ValidationError):
        GrantConfig.model_validate({"consumer": "c", "datasets": ["a.b"], "purposes": ["p"],
                                    **spec})
