"""The hub never changes a source: writes are refused, and checksums stay equal."""

from __future__ import annotations

import pytest

from tests.checksums import city_checksums
from zhongshu.errors import ZhongshuError
from zhongshu.policy.identity import Caller
from zhongshu.query.service import QueryService

WRITES = [
    "INSERT INTO traffic.segments VALUES ('x', 'xihu', 'a', 'b', 1, 1, 1)",
    "UPDATE parking_westlake.garages SET total_spaces = 0",
    "DELETE FROM traffic.passages",
    "CREATE TABLE traffic.evil AS SELECT * FROM traffic.passages",
    "DROP TABLE traffic.passages",
    "ALTER TABLE traffic.passages ADD COLUMN x INT",
    "ATTACH '/tmp/evil.db' AS evil",
    "ATTACH '/tmp/evil.db' AS evil (TYPE sqlite)",
    "COPY (SELECT * FROM traffic.passages) TO '/tmp/out.csv'",
    "COPY traffic.segments FROM '/etc/passwd'",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "RESET lock_configuration",
    "PRAGMA database_list",
    "CALL duckdb_settings()",
    "SELECT * INTO evil FROM traffic.segments",
    "WITH x AS (SELECT 1) DELETE FROM traffic.passages",
    "SELECT 1; DROP TABLE traffic.passages",
    "DETACH src_traffic_police_db",
    "CHECKPOINT",
    "VACUUM",
    "EXPORT DATABASE '/tmp/x'",
]

FILE_READS = [
    ("SELECT * FROM read_csv('/etc/passwd')", {"function_not_allowed"}),
    ("SELECT * FROM read_csv_auto('/etc/passwd')", {"function_not_allowed"}),
    ("SELECT * FROM '/etc/passwd'", {"function_not_allowed", "dataset_not_found"}),
    ("SELECT * FROM read_text('/etc/passwd')", {"function_not_allowed"}),
    ("SELECT * FROM sqlite_scan('/etc/passwd', 'x')", {"function_not_allowed"}),
    ("SELECT read_blob('/etc/passwd')", {"function_not_allowed"}),
    ("SELECT * FROM glob('/etc/*')", {"function_not_allowed"}),
    ("SELECT getenv('HOME')", {"function_not_allowed"}),
    ("SELECT current_setting('allowed_directories')", {"function_not_allowed"}),
    ("SELECT * FROM duckdb_databases()", {"function_not_allowed"}),
    ("SELECT * FROM duckdb_secrets()", {"function_not_allowed"}),
    ("SELECT * FROM information_schema.tables", {"dataset_not_found"}),
    ("SELECT * FROM src_traffic_police_db.main.passages", {"dataset_not_found"}),
    ("SELECT * FROM pg_catalog.pg_tables", {"dataset_not_found"}),
]

READS = [
    "SELECT count(*) FROM traffic.passages",
    "SELECT * FROM traffic.passages WHERE passage_id = 3",
    "SELECT c.district, count(*) FROM traffic.passages p JOIN traffic.checkpoints c "
    "ON p.camera_id = c.camera_id GROUP BY 1",
    "SELECT * FROM parking_qiantang.tickets ORDER BY ticket LIMIT 20",
    "SELECT * FROM onstreet.spots WHERE district = 'xihu'",
    "SELECT species, count(*) FROM parks.trees GROUP BY 1",
    "SELECT * FROM civil.streets",
    "SELECT h.name, count(*) FROM health.visits v JOIN health.hospitals h "
    "ON v.hospital_id = h.hospital_id GROUP BY 1",
]


def _code(svc: QueryService, caller: Caller, sql: str) -> str:
    try:
        svc.run(caller, sql, "city-operations")
    except ZhongshuError as e:
        return e.code
    return "ok"


def _run_battery(svc: QueryService) -> None:
    caller = Caller(svc.catalog.members["cockpit-city"])
    owner = Caller(svc.catalog.members["traffic-police"])
    for sql in WRITES:
        for who in (caller, owner):
            assert _code(svc, who, sql) == "statement_not_allowed", sql
    for sql, codes in FILE_READS:
        assert _code(svc, caller, sql) in codes, sql
    for sql in READS:
        assert _code(svc, caller, sql) == "ok", sql


def test_writes_refused_and_sources_unchanged(service: QueryService) -> None:
    before = city_checksums(service.city)
    _run_battery(service)
    assert city_checksums(service.city) == before


@pytest.mark.server
def test_real_sources_unchanged(real_service: QueryService) -> None:
    before = city_checksums(real_service.city)
    assert {s.kind for _o, s in real_service.city.sources().values()} >= {"postgres", "mysql"}
    _run_battery(real_service)
    assert city_checksums(real_service.city) == before


def test_engine_is_locked(service: QueryService) -> None:
    """Below the firewall, DuckDB itself refuses to change its configuration."""
    cur = service.engine.cursor()
    for stmt in ("SET enable_external_access = true", "SET lock_configuration = false",
                 "SET allowed_directories = ['/']"):
        with pytest.raises(Exception, match="locked"):
            cur.execute(stmt)
    with pytest.raises(Exception, match="disabled|Permission"):
        cur.execute("SELECT * FROM read_csv('/etc/passwd')").fetchall()
