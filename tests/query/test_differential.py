"""Pushdown and DuckDB answer the same governed query with the same rows and types."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest

from zhongshu.policy.identity import Caller
from zhongshu.query.service import QueryService

# (caller, SQL, must it be pushed down?)
QUERIES: list[tuple[str, str, bool]] = [
    ("cockpit-city", "SELECT * FROM traffic.passages WHERE passage_id = 17", True),
    ("cockpit-city", "SELECT passage_id, speed_kmh FROM traffic.passages "
                     "WHERE camera_id = 'cam-010a' ORDER BY passage_id", True),
    ("cockpit-city", "SELECT vehicle_type, count(*) AS n, avg(speed_kmh) AS v, "
                     "min(speed_kmh) AS lo, max(speed_kmh) AS hi FROM traffic.passages "
                     "GROUP BY vehicle_type ORDER BY vehicle_type", True),
    ("cockpit-city", "SELECT c.street, count(*) AS n FROM traffic.passages p "
                     "JOIN traffic.checkpoints c ON p.camera_id = c.camera_id "
                     "WHERE c.district = 'xihu' GROUP BY c.street ORDER BY n DESC, c.street", True),
    ("cockpit-city", "SELECT segment_id, lanes FROM traffic.segments WHERE lanes >= 3 "
                     "AND free_flow_kmh > 50 ORDER BY segment_id", True),
    ("cockpit-city", "SELECT vehicle_type FROM traffic.passages WHERE vehicle_type > 'car' "
                     "GROUP BY 1 ORDER BY 1", True),
    ("parking-qiantang", "SELECT ticket, car_plate, t_out, amount_yuan FROM "
                         "parking_qiantang.tickets ORDER BY t_out DESC, ticket LIMIT 40", True),
    ("parking-qiantang", "SELECT lot_id, sum(amount_yuan) AS total, count(t_out) AS done "
                         "FROM parking_qiantang.tickets GROUP BY lot_id ORDER BY lot_id", True),
    ("parking-westlake", "SELECT garage_no, count(*) AS n, sum(fee_cents) AS fees FROM "
                         "parking_westlake.sessions WHERE garage_no <> 'WL001' "
                         "GROUP BY garage_no ORDER BY garage_no", True),
    ("parking-westlake", "SELECT * FROM parking_westlake.sessions ORDER BY \"left\", session_id "
                         "LIMIT 25", True),
    ("cockpit-city", "SELECT upper(district) AS d, coalesce(max(total_spaces), 0) AS m FROM "
                     "parking_westlake.garages GROUP BY district ORDER BY d", True),
    ("health", "SELECT hospital_id, count(*) AS n, sum(CASE WHEN paid_once THEN 1 ELSE 0 END) "
               "AS once FROM health.visits GROUP BY hospital_id ORDER BY hospital_id", True),
    ("cockpit-city", "SELECT count(*) FROM traffic.passages WHERE passed_at < "
                     "'2026-11-24 08:00:00'", False),
    ("cockpit-city", "SELECT date_trunc('hour', passed_at) AS h, count(*) FROM "
                     "traffic.passages GROUP BY 1 ORDER BY 1", False),
]


def _norm(v: Any) -> Any:
    if isinstance(v, float):
        return float(f"{v:.9g}") if math.isfinite(v) else v
    if isinstance(v, Decimal):
        return float(f"{float(v):.9g}")
    return v


def _check(svc: QueryService, native_kinds: set[str]) -> int:
    pushed = 0
    for member, sql, must_push in QUERIES:
        caller = Caller(svc.catalog.members[member])
        auto = svc.run(caller, sql, "city-operations")
        duck = svc.run(caller, sql, "city-operations", engine="duckdb")
        kind = next(iter(auto.plan.datasets.values())).source.kind
        if must_push and kind in native_kinds:
            assert auto.path.startswith("native:"), (sql, auto.path)
            pushed += 1
        assert duck.path == "duckdb"
        assert auto.table.schema == duck.table.schema, sql
        a = [[_norm(v) for v in r.values()] for r in auto.table.to_pylist()]
        d = [[_norm(v) for v in r.values()] for r in duck.table.to_pylist()]
        assert a == d, sql
        assert len(a) > 0, sql
    return pushed


def test_sqlite_pushdown_equals_duckdb(service: QueryService) -> None:
    assert _check(service, {"sqlite"}) >= 10


@pytest.mark.server
def test_postgres_and_mariadb_pushdown_equals_duckdb(real_service: QueryService) -> None:
    assert _check(real_service, {"postgres", "mysql"}) >= 10
