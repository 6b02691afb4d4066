"""Each kind translates its driver's errors in one place: transient (the source failed: retry
or mark it down) vs timeout vs terminal (the query's fault).

Every error here is the real one, produced by the real driver against the real server: a
closed port, a dropped database, a connection killed by the server, a file removed.
"""

from __future__ import annotations

import socket
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pymysql
import pytest

from tests.conftest import require_server
from zhongshu.config import SourceConfig
from zhongshu.demo.city import ServerSettings
from zhongshu.errors import QueryInvalid, QueryTimeout, SourceUnavailable
from zhongshu.query.worker import WorkerError
from zhongshu.sources import NativeSQL, Source, open_source
from zhongshu.sources.base import scratch_engine

SERVERS = ServerSettings.from_env()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _raised(fn: Any) -> BaseException:
    try:
        fn()
    except Exception as e:
        return e
    raise AssertionError("no error raised")


_OPENED: list[Source] = []


@pytest.fixture(autouse=True)
def _close_sources() -> Iterator[None]:
    yield
    while _OPENED:
        _OPENED.pop().close()


def _source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **fields: Any) -> Source:
    password = fields.pop("password", None)
    if password is not None:
        monkeypatch.setenv("ZHONGSHU_SECRET_ERRORS_PW", password)
        fields["password_secret"] = "errors-pw"
    src = open_source(SourceConfig(name="dept-db", **fields), tmp_path, "dept")
    _OPENED.append(src)
    return src


# --- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture
def pg_db() -> Iterator[str]:
    """A database of its own (created, then dropped)."""
    require_server("PostgreSQL", 5432)
    name = f"zs_err_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(**SERVERS.pg, dbname="postgres", autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        with psycopg.connect(**SERVERS.pg, dbname="postgres", autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _pg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database: str, **kw: Any) -> Source:
    return _source(tmp_path, monkeypatch, kind="postgres", host=SERVERS.pg["host"],
                   port=kw.pop("port", SERVERS.pg["port"]), database=database,
                   user=SERVERS.pg["user"], password=SERVERS.pg.get("password"), **kw)


@pytest.mark.server
def test_postgres_closed_port_is_transient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    require_server("PostgreSQL", 5432)
    src = _pg(tmp_path, monkeypatch, "postgres", port=closed_port())
    assert isinstance(src, NativeSQL)
    e = _raised(src.connect_native)
    assert isinstance(e, psycopg.OperationalError)
    assert src.is_transient(e)
    err = src.translate(e)
    assert isinstance(err, SourceUnavailable) and err.__cause__ is e
    assert "dept-db" in err.message


@pytest.mark.server
def test_postgres_dropped_database_is_transient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                pg_db: str) -> None:
    src = _pg(tmp_path, monkeypatch, pg_db)
    assert src.health() == "ok"
    with psycopg.connect(**SERVERS.pg, dbname="postgres", autocommit=True) as c:
        c.execute(f"DROP DATABASE {pg_db} WITH (FORCE)")
    e = _raised(src.probe)
    assert isinstance(e, psycopg.OperationalError) and src.classify(e) == "transient"


@pytest.mark.server
def test_postgres_terminated_session_is_transient(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  pg_db: str) -> None:
    src = _pg(tmp_path, monkeypatch, pg_db)
    assert isinstance(src, NativeSQL)
    conn = src.connect_native()
    try:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        with psycopg.connect(**SERVERS.pg, dbname="postgres", autocommit=True) as c:
            c.execute("SELECT pg_terminate_backend(%s)", [pid])
        e = _raised(lambda: src.run_native(conn, "SELECT 1", (), 5))
    finally:
        conn.close()
    assert isinstance(e, psycopg.errors.AdminShutdown)  # SQLSTATE 57P01
    assert src.classify(e) == "transient"


@pytest.mark.server
def test_postgres_query_error_is_terminal_and_hides_values(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_db: str) -> None:
    src = _pg(tmp_path, monkeypatch, pg_db)
    assert isinstance(src, NativeSQL)
    e = _raised(lambda: src.execute_native("SELECT CAST('s3cret-value' AS integer)", (), 5))
    assert isinstance(e, psycopg.errors.InvalidTextRepresentation)  # 22P02
    assert src.classify(e) == "terminal"
    err = src.translate(e)
    assert isinstance(err, QueryInvalid) and "s3cret-value" not in err.message
    slow = _pg(tmp_path, monkeypatch, pg_db, statement_timeout_s=0.3)
    assert isinstance(slow, NativeSQL)
    with pytest.raises(QueryTimeout) as timeout:
        slow.execute_native("SELECT pg_sleep(5)", (), 5)
    assert isinstance(timeout.value.__cause__, psycopg.errors.QueryCanceled)


# --- MySQL / MariaDB ----------------------------------------------------------------------


@pytest.fixture
def my_db() -> Iterator[str]:
    require_server("MariaDB", 3306)
    name = f"zs_err_{uuid.uuid4().hex[:8]}"
    conn = pymysql.connect(**SERVERS.mysql, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    try:
        yield name
    finally:
        conn = pymysql.connect(**SERVERS.mysql, autocommit=True)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.close()


def _my(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database: str, **kw: Any) -> Source:
    return _source(tmp_path, monkeypatch, kind="mysql", host=SERVERS.mysql["host"],
                   port=kw.pop("port", SERVERS.mysql["port"]), database=database,
                   user=SERVERS.mysql["user"], password=SERVERS.mysql.get("password"), **kw)


@pytest.mark.server
def test_mysql_closed_port_is_transient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_server("MariaDB", 3306)
    src = _my(tmp_path, monkeypatch, "mysql", port=closed_port())
    e = _raised(src.probe)
    assert isinstance(e, pymysql.err.OperationalError) and e.args[0] == 2003
    assert src.is_transient(e)
    assert isinstance(src.translate(e), SourceUnavailable)


@pytest.mark.server
def test_mysql_dropped_database_and_killed_session_are_transient(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, my_db: str) -> None:
    src = _my(tmp_path, monkeypatch, my_db)
    assert isinstance(src, NativeSQL)
    conn = src.connect_native()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            cid = cur.fetchone()[0]
        killer = pymysql.connect(**SERVERS.mysql, autocommit=True)
        with killer.cursor() as cur:
            cur.execute(f"KILL CONNECTION {cid}")
        killer.close()
        e = _raised(lambda: src.run_native(conn, "SELECT 1", (), 5))
    finally:
        conn.close()
    assert isinstance(e, pymysql.err.OperationalError) and e.args[0] in (2006, 2013)
    assert src.classify(e) == "transient"
    conn = pymysql.connect(**SERVERS.mysql, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE {my_db}")
    conn.close()
    e = _raised(src.probe)
    assert isinstance(e, pymysql.err.OperationalError) and e.args[0] == 1049
    assert src.classify(e) == "transient"


@pytest.mark.server
def test_mysql_query_error_is_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       my_db: str) -> None:
    src = _my(tmp_path, monkeypatch, my_db)
    assert isinstance(src, NativeSQL)
    e = _raised(lambda: src.execute_native("SELECT no_such_column FROM no_such_table", (), 5))
    assert isinstance(e, pymysql.err.ProgrammingError) and e.args[0] == 1146
    assert src.classify(e) == "terminal"
    assert isinstance(src.translate(e), QueryInvalid)


# --- SQLite -------------------------------------------------------------------------------


def _sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: Path) -> Source:
    return _source(tmp_path, monkeypatch, kind="sqlite", path=str(path))


def test_sqlite_unopenable_file_is_transient(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    e = _raised(lambda: sqlite3.connect(f"file:{tmp_path}/gone.db?mode=ro", uri=True))
    src = _sqlite(tmp_path, monkeypatch, tmp_path / "gone.db")
    assert isinstance(e, sqlite3.OperationalError) and src.classify(e) == "transient"
    e = _raised(src.probe)  # the adapter's own check comes first
    assert isinstance(e, FileNotFoundError) and src.classify(e) == "transient"
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 200)
    e = _raised(_sqlite(tmp_path, monkeypatch, tmp_path / "junk.db").probe)
    assert isinstance(e, sqlite3.DatabaseError) and src.classify(e) == "transient"  # NOTADB


def test_sqlite_query_error_is_terminal_and_interrupt_a_timeout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "d.db"
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE t (x INTEGER)")
    src = _sqlite(tmp_path, monkeypatch, path)
    assert isinstance(src, NativeSQL)
    e = _raised(lambda: src.execute_native("SELECT nope FROM t", (), 5))
    assert isinstance(e, sqlite3.OperationalError) and src.classify(e) == "terminal"
    with pytest.raises(QueryTimeout) as timeout:
        src.execute_native("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
                           "SELECT count(*) FROM r", (), 0.3)
    cause = timeout.value.__cause__
    assert isinstance(cause, sqlite3.OperationalError)
    assert cause.sqlite_errorcode == sqlite3.SQLITE_INTERRUPT


# --- DuckDB reading a source (in process, or reported by a worker) ------------------------


def test_duckdb_scanner_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    duckdb.sql(f"COPY (SELECT 1 AS x) TO '{folder}/t.parquet' (FORMAT parquet)")
    src = _source(tmp_path, monkeypatch, kind="parquet", path=str(folder))
    con = scratch_engine()
    try:
        src.attach(con)
        rel = src.relation("t").sql("duckdb")
        (folder / "t.parquet").unlink()  # the department removed the file
        e = _raised(lambda: con.execute(f"SELECT * FROM {rel}").fetchall())
        assert isinstance(e, duckdb.IOException) and src.classify(e) == "transient"
        e = _raised(lambda: con.execute("SELECT CAST('abc' AS INTEGER)").fetchall())
        assert isinstance(e, duckdb.ConversionException) and src.classify(e) == "terminal"
        assert "abc" not in src.translate(e).message
    finally:
        con.close()
    # the DuckDB worker reports an engine error by its class name
    assert src.classify(WorkerError("IOException", "IO Error: Unable to connect")) == \
        "transient"
    assert src.classify(WorkerError("InterruptException", "INTERRUPT Error")) == "timeout"
    assert src.classify(WorkerError("BinderException", "Binder Error: …")) == "terminal"


@pytest.mark.server
def test_duckdb_mysql_scanner_refused_is_transient(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    require_server("MariaDB", 3306)
    port = closed_port()
    src = _my(tmp_path, monkeypatch, "mysql", port=port)
    con = scratch_engine()
    try:
        from zhongshu.sources import _extensions

        _extensions.load(con, "mysql_scanner")
        e = _raised(lambda: con.execute(
            f"ATTACH 'host=127.0.0.1 port={port} user=root database=x' AS m "
            "(TYPE mysql, READ_ONLY)"))
    finally:
        con.close()
    assert isinstance(e, duckdb.IOException) and src.classify(e) == "transient"


# --- streams ------------------------------------------------------------------------------


def test_stream_broker_refused_is_transient(tmp_path: Path) -> None:
    from zhongshu.config import MemberFile, StreamConfig
    from zhongshu.sources import open_stream

    port = closed_port()
    for kind in ("mqtt", "nats"):
        stream = StreamConfig(name="live", kind=kind, port=port, topic="t", time_column="at",
                              columns=[{"name": "at", "type": "TIMESTAMP"}])
        member = MemberFile(member={"name": "dept", "kind": "department"}, streams=[stream])
        src = open_stream(stream, member, tmp_path)
        e = _raised(src.probe)
        assert src.classify(e) == "transient", (kind, repr(e))
        assert src.health().startswith("down: ")
