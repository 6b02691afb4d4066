"""The demo city's grants (DEMO_CITY.md) enforced end to end, checked against the raw files
read with sqlite3 (no hub code in the oracle)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from zhongshu.errors import ZhongshuError
from zhongshu.policy.identity import Caller
from zhongshu.query.service import QueryService


def _raw(demo_dir: Path, member: str, sql: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(f"file:{demo_dir / 'data' / f'{member}.sqlite'}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _run(service: QueryService, member: str, sql: str, purpose: str) -> list[dict[str, Any]]:
    return service.run(Caller(service.catalog.members[member]), sql, purpose).table.to_pylist()


def _code(service: QueryService, member: str, sql: str, purpose: str) -> str:
    try:
        service.run(Caller(service.catalog.members[member]), sql, purpose)
    except ZhongshuError as e:
        return e.code
    return "ok"


def test_outsider_gets_nothing(service: QueryService) -> None:
    for name, ds in service.catalog.datasets.items():
        code = _code(service, "outsider", f"SELECT count(*) FROM {name}", "anything")
        assert code == ("forbidden" if ds.listed else "dataset_not_found"), name


def test_wrong_purpose(service: QueryService) -> None:
    assert _code(service, "cockpit-city", "SELECT count(*) FROM traffic.segments",
                 "marketing") == "purpose_not_granted"
    assert _code(service, "cockpit-xihu", "SELECT count(*) FROM traffic.segments",
                 "city-operations") == "purpose_not_granted"


def test_cockpit_city_reads_no_personal_columns(service: QueryService) -> None:
    for sql in ("SELECT plate FROM traffic.passages", "SELECT id_number FROM health.visits",
                "SELECT car_plate FROM parking_qiantang.tickets"):
        assert _code(service, "cockpit-city", sql, "city-operations") == "column_not_granted"
    rows = _run(service, "cockpit-city", "SELECT * FROM traffic.passages LIMIT 5",
                "city-operations")
    assert rows and "plate" not in rows[0]


XIHU_ESCAPES = [
    "SELECT district FROM traffic.checkpoints",
    "SELECT district FROM traffic.checkpoints WHERE district = 'binjiang'",
    "SELECT district FROM traffic.checkpoints WHERE NOT district = 'xihu'",
    "SELECT district FROM traffic.checkpoints WHERE district <> 'xihu' OR 1 = 1",
    "SELECT district FROM traffic.checkpoints UNION ALL SELECT district FROM civil.districts",
    "SELECT district FROM (SELECT * FROM traffic.checkpoints) AS t",
    "SELECT a.district FROM traffic.checkpoints a JOIN traffic.checkpoints b "
    "ON a.camera_id <> b.camera_id LIMIT 500",
    "SELECT district FROM traffic.checkpoints WHERE camera_id IN (SELECT camera_id FROM "
    "traffic.checkpoints WHERE district = 'gongshu')",
    "SELECT lag(district) OVER (ORDER BY camera_id) AS district FROM traffic.checkpoints",
    "WITH all_cams AS (SELECT * FROM traffic.checkpoints) SELECT district FROM all_cams",
    "SELECT t.district FROM civil.districts d, LATERAL (SELECT district FROM "
    "traffic.checkpoints c WHERE c.district = d.district) t",
    "SELECT district FROM parks.trees",
    "SELECT district FROM onstreet.spots",
    "SELECT district FROM parking_westlake.garages",
    "SELECT district FROM civil.streets",
]


@pytest.mark.parametrize("sql", XIHU_ESCAPES)
def test_cockpit_xihu_sees_only_xihu(service: QueryService, sql: str) -> None:
    rows = _run(service, "cockpit-xihu", sql, "district-operations")
    assert {r["district"] for r in rows} <= {"xihu", None}


def test_cockpit_xihu_scoped_through_references(service: QueryService, demo_dir: Path) -> None:
    xihu_cams = {r[0] for r in _raw(demo_dir, "traffic-police",
                                    "SELECT camera_id FROM checkpoints WHERE district = 'xihu'")}
    want = _raw(demo_dir, "traffic-police", "SELECT count(*) FROM passages WHERE camera_id IN "
                "(SELECT camera_id FROM checkpoints WHERE district = 'xihu')")[0][0]
    got = _run(service, "cockpit-xihu", "SELECT camera_id FROM traffic.passages",
               "district-operations")
    assert len(got) == want > 0
    assert {r["camera_id"] for r in got} <= xihu_cams
    # filtering on another district answers no rows, and says which scope applied
    res = service.run(Caller(service.catalog.members["cockpit-xihu"]),
                      "SELECT count(*) AS n FROM traffic.checkpoints WHERE district = 'binjiang'",
                      "district-operations")
    assert res.table.to_pylist() == [{"n": 0}]
    assert res.plan.row_scope == [{"dataset": "traffic.checkpoints",
                                   "grant": "cockpit-xihu:traffic.checkpoints",
                                   "scope": "district = 'xihu'"}]
    garages = {r[0] for r in _raw(demo_dir, "parking-westlake",
                                  "SELECT garage_no FROM garages WHERE district = 'xihu'")}
    occ = _run(service, "cockpit-xihu", "SELECT DISTINCT garage_no FROM "
               "parking_westlake.occupancy", "district-operations")
    assert {r["garage_no"] for r in occ} == garages
    lots = _run(service, "cockpit-xihu", "SELECT DISTINCT area_code FROM parking_qiantang.lots",
                "district-operations")
    assert {r["area_code"] for r in lots} <= {"330106"}


def test_app_parking_joins_by_pseudonym_and_finds_a_plate(service: QueryService,
                                                          demo_dir: Path) -> None:
    sessions = _run(service, "app-parking", "SELECT plate FROM parking_westlake.sessions",
                    "convenient-parking")
    assert sessions and not any(str(r["plate"]).startswith("浙") for r in sessions)
    # the join across operators on the pseudonym matches the join on the clear plates
    raw_w = _raw(demo_dir, "parking-westlake", "SELECT plate FROM sessions")
    raw_q = _raw(demo_dir, "parking-qiantang", "SELECT replace(car_plate, '-', '') FROM tickets")
    qcount: dict[str, int] = {}
    for (p,) in raw_q:
        qcount[p] = qcount.get(p, 0) + 1
    want = sum(qcount.get(p, 0) for (p,) in raw_w)
    got = _run(service, "app-parking", "SELECT count(*) AS n FROM parking_westlake.sessions s "
               "JOIN parking_qiantang.tickets t ON s.plate = t.car_plate", "convenient-parking")
    assert got == [{"n": want}]
    # a driver who holds their plate finds their sessions by equality, never the plate itself
    plate = raw_w[0][0]
    n = sum(1 for (p,) in raw_w if p == plate)
    mine = _run(service, "app-parking", "SELECT session_id, plate FROM "
                f"parking_westlake.sessions WHERE plate = '{plate}'", "convenient-parking")
    assert len(mine) == n > 0
    assert all(r["plate"] != plate for r in mine)
    for sql in (f"SELECT * FROM parking_westlake.sessions WHERE plate > '{plate}'",
                "SELECT * FROM parking_westlake.sessions WHERE plate LIKE '浙A1%'",
                f"SELECT * FROM parking_westlake.sessions WHERE plate BETWEEN '浙A0' AND "
                f"'{plate}'"):
        assert _code(service, "app-parking", sql, "convenient-parking") == "column_not_granted"


def test_pseudonyms_unlinkable_across_consumers(service: QueryService) -> None:
    a = _run(service, "app-parking", "SELECT plate FROM parking_westlake.sessions "
             "ORDER BY session_id LIMIT 20", "convenient-parking")
    b = _run(service, "app-traffic", "SELECT plate FROM traffic.passages LIMIT 2000",
             "traffic-management")
    assert {r["plate"] for r in a}.isdisjoint({r["plate"] for r in b})


def test_app_medical_joins_on_id_number_and_never_obtains_it(service: QueryService,
                                                             demo_dir: Path) -> None:
    raw_v = _raw(demo_dir, "health", "SELECT id_number FROM visits")
    raw_s = {r[0] for r in _raw(demo_dir, "credit-bureau", "SELECT id_number FROM scores")}
    want = sum(1 for (i,) in raw_v if i in raw_s)
    got = _run(service, "app-medical", "SELECT count(*) AS n FROM health.visits v JOIN "
               "credit.scores c ON v.id_number = c.id_number", "pay-once-medical")
    assert got == [{"n": want}] and want > 0
    rows = _run(service, "app-medical", "SELECT v.id_number, c.id_number AS c2, c.score FROM "
                "health.visits v JOIN credit.scores c ON v.id_number = c.id_number",
                "pay-once-medical")
    clear = {i for (i,) in raw_v} | raw_s
    assert rows and not ({r["id_number"] for r in rows} | {r["c2"] for r in rows}) & clear
    idn = raw_v[0][0]
    found = _run(service, "app-medical", f"SELECT score FROM credit.scores WHERE id_number = "
                 f"'{idn}'", "pay-once-medical")
    assert len(found) == (1 if idn in raw_s else 0)
    assert _code(service, "app-medical", "SELECT patient_id FROM health.visits",
                 "pay-once-medical") == "column_not_granted"


def test_pseudonyms_equal_on_both_paths(service: QueryService) -> None:
    """SQLite computes pseudonyms in-process for pushdown; DuckDB workers with their UDF."""
    caller = Caller(service.catalog.members["app-parking"])
    sql = "SELECT session_id, plate FROM parking_westlake.sessions ORDER BY session_id LIMIT 50"
    native = service.run(caller, sql, "convenient-parking")
    duck = service.run(caller, sql, "convenient-parking", engine="duckdb")
    assert native.path.startswith("native:") and duck.path == "duckdb"
    assert native.table.to_pylist() == duck.table.to_pylist()
