"""The hub never changes a source: writes are refused, and checksums stay equal."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.checksums import city_checksums
from zhongshu.errors import ZhongshuError
from zhongshu.policy.identity import Caller
from zhongshu.query.service import QueryService
from zhongshu.query.worker import WorkerError

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


BYPASS = [  # the sqlite scanner attaches lazily: each ATTACH is followed by its use
    "ATTACH '{state}/hub.db' AS meta1 (TYPE sqlite); SELECT * FROM meta1.tokens",
    "ATTACH '{state}/hub.db' AS meta2 (TYPE sqlite, READ_ONLY); SELECT * FROM meta2.tokens",
    "SELECT * FROM sqlite_scan('{state}/hub.db', 'tokens')",
    "SELECT * FROM read_csv('{root}/secrets.toml')",
    "SELECT * FROM read_text('{state}/pseudonym.key')",
    "SELECT * FROM read_blob('{state}/pseudonym.key')",
    "SELECT * FROM read_csv('/etc/shadow')",
    "COPY (SELECT 1 AS x) TO '{root}/data/civil-affairs/evil.csv'",
    "COPY (SELECT 1 AS x) TO '{state}/evil.csv'",
    "ATTACH '{root}/data/evil.db' AS evil (TYPE sqlite); CREATE TABLE evil.t AS SELECT 1 AS x",
    "ATTACH '{root}/data/traffic-police.sqlite' AS rw (TYPE sqlite); "
    "DELETE FROM rw.passages",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
]


def test_second_wall_holds_without_the_firewall(service: QueryService) -> None:
    """The execution layer itself, called directly (no firewall), reaches nothing but the
    sources: not the hub's metadata, keys or secrets, and writes nowhere."""
    root, state = service.city.root, service.city.state_dir
    assert (state / "hub.db").is_file() and (state / "pseudonym.key").is_file()
    before = city_checksums(service.city)
    for stmt in BYPASS:
        sql = stmt.format(root=root, state=state)
        with pytest.raises(WorkerError):
            service.executor.engine.execute(sql, [], 10)
    assert not (root / "data" / "civil-affairs" / "evil.csv").exists()
    assert not (root / "data" / "evil.db").exists()
    assert city_checksums(service.city) == before
    # and the sources themselves are still readable there
    table, _ = service.executor.engine.execute(
        'SELECT count(*) AS n FROM "memory"."src_civil_affairs_db"."districts"', [], 10)
    assert table.column("n").to_pylist() == [6]
    assert service.executor.engine.runs_as == "nobody"


def test_readable_by_others(city_tmp: Path) -> None:
    """Whether `nobody` could read a city's files decides whether workers drop to it: a city
    under a 0700 folder keeps working (workers keep the hub's user, with a warning) instead of
    every source going down."""
    from zhongshu.query.execute import readable_by_others

    hidden = city_tmp / "hidden"
    (hidden / "data").mkdir(parents=True)
    (hidden / "data" / "x.csv").write_text("a\n1\n")
    (hidden / "data" / "x.csv").chmod(0o644)
    hidden.chmod(0o700)
    assert not readable_by_others(hidden / "data" / "x.csv")
    hidden.chmod(0o755)
    (hidden / "data").chmod(0o755)
    assert readable_by_others(hidden / "data" / "x.csv")
    (hidden / "data" / "x.csv").chmod(0o600)
    assert not readable_by_others(hidden / "data" / "x.csv")
