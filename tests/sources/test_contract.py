"""One contract, every kind of source: SQLite, PostgreSQL, MariaDB, Parquet and CSV.

Each case takes a real source of the demo city (embedded or ``--engines real``) and checks
what the hub promises about every source: read-only attachment, health, columns, pushdown of
filters and projections, native execution, the statement timeout and the concurrency cap.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from zhongshu.config import load_city
from zhongshu.errors import QueryTimeout, SourceUnavailable
from zhongshu.policy.identity import Caller
from zhongshu.query.service import QueryService
from zhongshu.sources import Source, open_source


@dataclass(frozen=True)
class Case:
    kind: str
    city: str  # fixture name of the city folder
    source: str
    table: str
    column: str
    value: str
    dataset: str
    slow_sql: str | None  # a query that runs for seconds on the source itself


CASES = [
    Case("sqlite", "demo_dir", "traffic-police-db", "passages", "camera_id", "cam-010a",
         "traffic.passages",
         "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 100000000) "
         "SELECT count(*) FROM r"),
    Case("postgres", "real_dir", "traffic-police-db", "passages", "camera_id", "cam-010a",
         "traffic.passages", "SELECT pg_sleep(5)"),
    Case("mysql", "real_dir", "parking-westlake-db", "sessions", "garage_no", "WL002",
         "parking_westlake.sessions", "SELECT SLEEP(5)"),
    Case("parquet", "demo_dir", "parks-db", "trees", "species", "ginkgo", "parks.trees", None),
    Case("csv", "demo_dir", "civil-affairs-db", "streets", "district", "xihu", "civil.streets",
         None),
]


NATIVE = [c for c in CASES if c.slow_sql is not None]  # kinds with their own SQL engine


def _case(request: pytest.FixtureRequest) -> tuple[Case, Path]:
    c: Case = request.param
    if c.city == "real_dir":
        request.applymarker(pytest.mark.server)
    return c, request.getfixturevalue(c.city)


@pytest.fixture(params=CASES, ids=[c.kind for c in CASES])
def case(request: pytest.FixtureRequest) -> tuple[Case, Path]:
    return _case(request)


@pytest.fixture(params=NATIVE, ids=[c.kind for c in NATIVE])
def native_case(request: pytest.FixtureRequest) -> tuple[Case, Path]:
    return _case(request)


_OPENED: list[Source] = []


@pytest.fixture(autouse=True)
def _close_sources() -> Iterator[None]:
    yield
    while _OPENED:
        _OPENED.pop().close()


def _source(city_dir: Path, name: str, **overrides: object) -> Source:
    city = load_city(city_dir)
    owner, config = city.sources()[name]
    if overrides:
        config = config.model_copy(update=overrides)
    src = open_source(config, city.root, owner)
    _OPENED.append(src)
    return src


def _engine(src: Source) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    src.attach(con)
    return con


def test_health_and_columns(case: tuple[Case, Path]) -> None:
    c, city_dir = case
    src = _source(city_dir, c.source)
    assert src.health() == "ok"
    con = _engine(src)
    cols = src.columns(con, c.table)
    assert c.column in cols and len(cols) >= 3


def test_attached_read_only(case: tuple[Case, Path]) -> None:
    """Below the firewall, the attachment itself refuses writes."""
    c, city_dir = case
    src = _source(city_dir, c.source)
    con = _engine(src)
    rel = src.relation(c.table).sql("duckdb")
    before = con.execute(f"SELECT count(*) FROM {rel}").fetchone()
    for stmt in (f"DELETE FROM {rel}", f"UPDATE {rel} SET {c.column} = NULL",
                 f"INSERT INTO {rel} SELECT * FROM {rel} LIMIT 1"):
        with pytest.raises(duckdb.Error):
            con.execute(stmt)
    assert con.execute(f"SELECT count(*) FROM {rel}").fetchone() == before


def test_native_connection_read_only(native_case: tuple[Case, Path]) -> None:
    c, city_dir = native_case
    src = _source(city_dir, c.source)
    with pytest.raises(Exception, match="(?i)read.only|readonly|attempt to write|not authorized"):
        src.execute_native(f'DELETE FROM {src.native_relation(c.table).sql(src.dialect)}', (),
                           10)


def test_projection_and_filter_pushdown(case: tuple[Case, Path],
                                        request: pytest.FixtureRequest) -> None:
    c, city_dir = case
    src = _source(city_dir, c.source)
    con = _engine(src)
    rel = src.relation(c.table).sql("duckdb")
    plan = con.execute(f"EXPLAIN SELECT {c.column} FROM {rel} WHERE {c.column} = "
                       f"'{c.value}'").fetchall()[0][1]
    # the scan reads only the column asked for
    assert "Projections:" in plan and c.column in plan.split("Projections:")[1], plan
    if c.kind in ("postgres", "parquet"):
        # and applies the filter itself (CSV has no index or statistics to skip rows with)
        assert "Filters:" in plan, plan
    if c.kind in ("sqlite", "mysql", "postgres"):
        # single-source queries go down whole, filter and projection included
        svc = request.getfixturevalue("service" if c.city == "demo_dir" else "real_service")
        caller = Caller(svc.catalog.members["cockpit-city"])
        result = svc.run(caller, f"SELECT {c.column} FROM {c.dataset} WHERE {c.column} = "
                                 f"'{c.value}'", "city-operations")
        assert result.path == f"native:{c.source}"
        assert "WHERE" in (result.plan.native_sql or "")
        assert set(result.table.column(c.column).to_pylist()) == {c.value}


def test_native_answers_like_duckdb(native_case: tuple[Case, Path]) -> None:
    c, city_dir = native_case
    src = _source(city_dir, c.source)
    con = _engine(src)
    want = con.execute(f"SELECT count(*) FROM {src.relation(c.table).sql('duckdb')} "
                       f"WHERE {c.column} = '{c.value}'").fetchone()[0]
    native_rel = src.native_relation(c.table).sql(src.dialect)
    sql = f"SELECT count(*) FROM {native_rel} WHERE {c.column} = {src.placeholder(0)}"
    _names, rows, _seconds = src.execute_native(sql, (c.value,), 10)
    assert rows[0][0] == want > 0


def test_statement_timeout_enforced_by_source(native_case: tuple[Case, Path]) -> None:
    c, city_dir = native_case
    assert c.slow_sql
    src = _source(city_dir, c.source, statement_timeout_s=0.5)
    with pytest.raises(QueryTimeout):
        src.execute_native(c.slow_sql, (), 0.5)
    # the pooled connection is still usable (or was replaced) afterwards
    _names, rows, _seconds = src.execute_native("SELECT 1", (), 5)
    assert rows[0][0] == 1


def test_concurrency_cap(case: tuple[Case, Path]) -> None:
    c, city_dir = case
    src = _source(city_dir, c.source, max_concurrency=1)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with src.slot(5):
            held.set()
            release.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    assert held.wait(5)
    with pytest.raises(SourceUnavailable, match="concurrency cap"):
        with src.slot(0.2):
            pass
    release.set()
    t.join()
    with src.slot(1):
        pass


def test_down_reason_has_no_password(case: tuple[Case, Path], monkeypatch: pytest.MonkeyPatch
                                     ) -> None:
    c, city_dir = case
    monkeypatch.setenv("ZHONGSHU_SECRET_CONTRACT_PW", "s3cret-Pa55")
    if c.kind in ("postgres", "mysql"):
        src = _source(city_dir, c.source, port=1, password_secret="contract-pw")
    else:
        src = _source(city_dir, c.source, path=f"data/missing-{c.kind}")
    health = src.health()
    assert health.startswith("down: ")
    assert "s3cret-Pa55" not in health


def test_service_health_lists_sources(service: QueryService) -> None:
    assert set(service.health()) == set(service.catalog.sources)
    assert all(v == "ok" for v in service.health().values())


def test_datasets_and_schema(case: tuple[Case, Path]) -> None:
    """Every kind lists the tables it offers and their columns, as DuckDB types."""
    c, city_dir = case
    src = _source(city_dir, c.source)
    assert c.table in src.datasets()
    schema = src.schema(c.table)
    con = _engine(src)
    assert schema == src.columns(con, c.table) and c.column in schema
