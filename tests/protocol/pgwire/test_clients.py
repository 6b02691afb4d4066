"""Real clients against a real hub process: psql (Debian), psycopg 3, asyncpg, SQLAlchemy +
pandas, pgJDBC (Debian's, from a small Java program).

Each connects as ``cockpit-city`` for ``city-operations``, lists the catalog (checked against
what the HTTP catalog and the caller's grants say it may read), runs the README's first
query (checked against ``POST /v1/query`` for the same caller), runs it as a prepared
statement with a parameter (checked against the literal query), is refused a column that is
not granted with SQLSTATE 42501 and the protocol's message, and reads the receipt: the
ledger entry it names is the exchange, one entry per exchange.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CI, require_tool
from tests.protocol.pgwire.conftest import CITY, README_SQL, WireHub

MEMBER, PURPOSE = CITY
REFUSED_SQL = "SELECT plate FROM traffic.passages"
PARAM_SQL = "SELECT count(*) AS n FROM traffic.passages WHERE vehicle_type = {}"
JAVA = Path(__file__).with_name("WireClient.java")
JDBC_JAR = Path("/usr/share/java/postgresql.jar")


def _http_rows(hub: WireHub, sql: str, member: str = MEMBER, purpose: str = PURPOSE
               ) -> list[list[Any]]:
    r = hub.http(member, sql, purpose)
    assert r.status_code == 200, r.text
    rows: list[list[Any]] = r.json()["rows"]
    return rows


def _http_refusal(hub: WireHub, sql: str) -> dict[str, Any]:
    r = hub.http(MEMBER, sql, PURPOSE)
    assert r.status_code == 403, r.text
    out: dict[str, Any] = r.json()["error"]
    return out


def _check_receipt(hub: WireHub, receipt: dict[str, Any], sql: str) -> None:
    """The receipt names this caller's exchange, whose result hash is the HTTP answer's."""
    got = hub.entry(MEMBER, receipt["index"])
    assert got["kind"] == "exchange" and got["caller"] == MEMBER
    assert got["purpose"] == PURPOSE and got["format"] == "pgwire"
    http = hub.http(MEMBER, sql, PURPOSE).json()
    want = hub.entry(MEMBER, http["receipt"]["index"])
    assert got["result_sha256"] == want["result_sha256"]  # the same rows, byte for byte
    assert got["rows"] == want["rows"] and got["columns"] == want["columns"]


def _check_catalog(hub: WireHub, tables: set[str]) -> None:
    assert tables == set(hub.visible(MEMBER, PURPOSE)), tables


# --- psql ---------------------------------------------------------------------------------

def _psql(hub: WireHub, *commands: str, sslmode: str = "disable"
          ) -> subprocess.CompletedProcess[str]:
    args = ["psql", "-X", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1",
            f"host=127.0.0.1 port={hub.pg_port} user={MEMBER} dbname={PURPOSE} "
            f"sslmode={sslmode}"]
    for c in commands:
        args += ["-c", c]
    env = {**os.environ, "PGPASSWORD": hub.token(MEMBER), "PGCONNECT_TIMEOUT": "20"}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)


def _need_psql() -> None:
    require_tool(Path(shutil.which("psql") or "/usr/bin/psql"), "the psql client test",
                 "apt-get install postgresql-client")


def test_psql(wire_hub: WireHub) -> None:
    _need_psql()
    out = _psql(wire_hub, r"\dt", README_SQL, "SHOW zhongshu.receipt")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    tables = {f"{ln.split('|')[0]}.{ln.split('|')[1]}" for ln in lines if ln.count("|") == 3}
    _check_catalog(wire_hub, tables)
    want = _http_rows(wire_hub, README_SQL)
    got = [[ln.split("|")[0], int(ln.split("|")[1])] for ln in lines if ln.count("|") == 1]
    assert got == want
    receipt = json.loads(lines[-1])
    _check_receipt(wire_hub, receipt, README_SQL)
    assert "zhongshu receipt" in out.stderr  # the NOTICE each answer carries

    described = _psql(wire_hub, r"\d traffic.passages")
    assert described.returncode == 0, described.stderr
    cols = {ln.split("|")[0] for ln in described.stdout.strip().splitlines() if "|" in ln}
    assert cols == wire_hub.visible(MEMBER, PURPOSE)["traffic.passages"]

    refused = _psql(wire_hub, REFUSED_SQL)
    assert refused.returncode != 0
    assert _http_refusal(wire_hub, REFUSED_SQL)["message"] in refused.stderr


def test_psql_over_tls_with_the_hubs_certificate(wire_hub: WireHub) -> None:
    _need_psql()
    cert = wire_hub.root / "state" / "pg-tls.crt"
    out = _psql(wire_hub, "SHOW zhongshu.purpose", sslmode="require")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == PURPOSE
    verified = _psql(wire_hub, "SHOW zhongshu.purpose",
                     sslmode=f"verify-full sslrootcert={cert}")
    assert verified.returncode == 0, verified.stderr


# --- psycopg ------------------------------------------------------------------------------

def test_psycopg(wire_hub: WireHub) -> None:
    import psycopg

    want = _http_rows(wire_hub, README_SQL)
    with psycopg.connect(wire_hub.dsn(MEMBER, PURPOSE), autocommit=True) as conn:
        login = json.loads(conn.execute("SHOW zhongshu.receipt").fetchone()[0])
        assert wire_hub.entry(MEMBER, login["index"])["kind"] == "login"
        tables = {f"{s}.{t}" for s, t in conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')").fetchall()}
        _check_catalog(wire_hub, tables)
        assert [list(r) for r in conn.execute(README_SQL).fetchall()] == want
        receipt = json.loads(conn.execute("SHOW zhongshu.receipt").fetchone()[0])
        assert receipt["index"] == login["index"] + 1  # one entry for the one exchange
        _check_receipt(wire_hub, receipt, README_SQL)
        # a prepared statement with a parameter answers as the literal query does
        literal = _http_rows(wire_hub, PARAM_SQL.format("'car'"))
        got = conn.execute(PARAM_SQL.format("%s"), ("car",), prepare=True).fetchall()
        assert [list(r) for r in got] == literal
        with pytest.raises(psycopg.Error) as refused:
            conn.execute(REFUSED_SQL)
        err = _http_refusal(wire_hub, REFUSED_SQL)
        assert refused.value.sqlstate == "42501"
        assert refused.value.diag.message_primary == err["message"]
        assert f"code: {err['code']}" in (refused.value.diag.message_detail or "")


# what DBeaver's PostgreSQL driver sends to open a connection and fill its navigator
# (schemas, tables of one, columns of one), as it sends them: extended protocol, parameters
DBEAVER_SCHEMAS = (
    "SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n LEFT OUTER JOIN "
    "pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0 AND "
    "d.classoid='pg_namespace'::regclass ORDER BY nspname")
DBEAVER_TABLES = (
    "select c.oid,c.*,t.relname as tabrelname,rt.relnamespace as refnamespace,d.description, "
    "case when c.relpartbound is not null then pg_get_expr(c.relpartbound, c.oid, true) end "
    "as partition_expr, case when c.relpartbound is not null then pg_get_partkeydef(c.oid) "
    "end as partition_key from pg_catalog.pg_class c left outer join pg_catalog.pg_description "
    "d on d.objoid=c.oid and d.objsubid=0 and d.classoid='pg_class'::regclass left outer join "
    "pg_catalog.pg_class t on t.oid=c.reltoastrelid left outer join pg_catalog.pg_class rt on "
    "rt.oid=c.reloftype where c.relnamespace=%s and c.relkind not in ('i','I','c')")
DBEAVER_COLUMNS = (
    "select c.relname,a.*,pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) as def_value,"
    "dsc.description,dep.objid from pg_catalog.pg_attribute a inner join pg_catalog.pg_class c "
    "on (a.attrelid=c.oid) left outer join pg_catalog.pg_attrdef ad on (a.attrelid=ad.adrelid "
    "and a.attnum = ad.adnum) left outer join pg_catalog.pg_description dsc on "
    "(c.oid=dsc.objoid and a.attnum = dsc.objsubid) left outer join pg_depend dep on "
    "dep.refobjid = a.attrelid AND dep.deptype = 'i' and dep.refobjsubid = a.attnum and "
    "dep.classid = dep.refclassid where a.attnum > 0 and NOT a.attisdropped and c.oid=%s "
    "order by a.attnum")
DBEAVER_CONNECT = (
    "SELECT current_schema(),session_user",
    "SELECT db.oid,db.* FROM pg_catalog.pg_database db WHERE datname=%s",
    "SELECT a.oid,a.* FROM pg_catalog.pg_roles a ORDER BY a.rolname",
    "select string_agg(word, ',') from pg_catalog.pg_get_keywords()",
    "SELECT t.oid,t.*,pg_tablespace_location(t.oid) loc FROM pg_catalog.pg_tablespace t "
    "ORDER BY t.oid")


def test_dbeaver_navigator_queries(wire_hub: WireHub) -> None:
    """DBeaver's own catalog queries answer from the emulated catalog, with what the caller
    may read (the grants, as the HTTP protocol says) and nothing else."""
    import psycopg

    visible = wire_hub.visible(MEMBER, PURPOSE)
    with psycopg.connect(wire_hub.dsn(MEMBER, PURPOSE), autocommit=True) as conn:
        for sql in DBEAVER_CONNECT:
            rows = conn.execute(sql, (PURPOSE,) if "%s" in sql else None,
                                prepare=True).fetchall()
            assert rows, sql
        keywords = conn.execute(DBEAVER_CONNECT[3]).fetchone()[0].split(",")
        assert {"select", "from", "where"} <= set(keywords)
        schemas = {r[2]: r[0] for r in conn.execute(DBEAVER_SCHEMAS, prepare=True)}
        assert {d.split(".")[0] for d in visible} <= set(schemas)
        seen: dict[str, set[str]] = {}
        for schema in sorted({d.split(".")[0] for d in visible}):
            for rel in conn.execute(DBEAVER_TABLES, (schemas[schema],), prepare=True):
                columns = conn.execute(DBEAVER_COLUMNS, (rel[0],), prepare=True).fetchall()
                seen[f"{schema}.{rel[2]}"] = {c[2] for c in columns}  # attname
        assert seen == visible


# --- asyncpg ------------------------------------------------------------------------------

def test_asyncpg(wire_hub: WireHub) -> None:
    import asyncpg

    want = _http_rows(wire_hub, README_SQL)
    literal = _http_rows(wire_hub, PARAM_SQL.format("'car'"))

    async def run() -> None:
        conn = await asyncpg.connect(host="127.0.0.1", port=wire_hub.pg_port, user=MEMBER,
                                     password=wire_hub.token(MEMBER), database=PURPOSE,
                                     ssl=False)
        try:
            rows = await conn.fetch(
                "SELECT table_schema || '.' || table_name AS t FROM information_schema.tables"
                " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')")
            _check_catalog(wire_hub, {r["t"] for r in rows})
            # asyncpg prepares every statement and reads answers in binary
            assert [list(r.values()) for r in await conn.fetch(README_SQL)] == want
            receipt = json.loads(await conn.fetchval("SHOW zhongshu.receipt"))
            _check_receipt(wire_hub, receipt, README_SQL)
            got = await conn.fetch(PARAM_SQL.format("$1"), "car")
            assert [list(r.values()) for r in got] == literal
            with pytest.raises(asyncpg.PostgresError) as refused:
                await conn.fetch(REFUSED_SQL)
            assert refused.value.sqlstate == "42501"
            assert refused.value.args[0] == _http_refusal(wire_hub, REFUSED_SQL)["message"]
        finally:
            await conn.close()

    asyncio.run(run())


# --- a large answer -----------------------------------------------------------------------

BIG_SQL = ("SELECT passage_id, camera_id, vehicle_type, passed_at, speed_kmh "
           "FROM traffic.passages ORDER BY passage_id LIMIT {}")
BIG_ROWS = 1500  # over pgwire.columns.WHOLE_FROM_ROWS: encoded whole columns at a time


def _as_json(rows: list[Any]) -> list[list[Any]]:
    """Client rows in the HTTP answer's JSON terms (ISO times, floats as numbers)."""
    return [[r[0], r[1], r[2], r[3].isoformat() if r[3] is not None else None,
             None if r[4] is None else float(r[4])] for r in rows]


def test_a_large_answer_is_the_small_answers_rows(wire_hub: WireHub) -> None:
    """A large answer (whole-column encoding) decodes, in text (psycopg), binary (psycopg's
    binary cursor, asyncpg) and through a portal read in slices (asyncpg's cursor), to the
    rows the same clients decode from small answers of the same rows (value-by-value
    encoding) and to the HTTP answer's rows."""
    import asyncpg
    import psycopg

    from zhongshu.protocol.pgwire.columns import WHOLE_FROM_ROWS

    assert BIG_ROWS >= 2 * WHOLE_FROM_ROWS
    http = [[*r[:4], None if r[4] is None else float(r[4])]
            for r in _http_rows(wire_hub, BIG_SQL.format(BIG_ROWS))]
    assert len(http) == BIG_ROWS
    piece = 100
    with psycopg.connect(wire_hub.dsn(MEMBER, PURPOSE), autocommit=True) as conn:
        whole = conn.execute(BIG_SQL.format(BIG_ROWS)).fetchall()
        pieces = [r for k in range(0, BIG_ROWS, piece) for r in conn.execute(
            BIG_SQL.format(f"{piece} OFFSET {k}")).fetchall()]
        assert whole == pieces
        assert _as_json(whole) == http
        with conn.cursor(binary=True) as cur:
            assert cur.execute(BIG_SQL.format(BIG_ROWS)).fetchall() == whole

    async def run() -> None:
        conn = await asyncpg.connect(host="127.0.0.1", port=wire_hub.pg_port, user=MEMBER,
                                     password=wire_hub.token(MEMBER), database=PURPOSE,
                                     ssl=False)
        try:
            got = [tuple(r.values()) for r in await conn.fetch(BIG_SQL.format(BIG_ROWS))]
            assert got == whole
            small = [tuple(r.values()) for k in range(0, BIG_ROWS, piece) for r in
                     await conn.fetch(BIG_SQL.format(f"{piece} OFFSET {k}"))]
            assert small == whole
            async with conn.transaction():  # a portal read 700 rows at a time
                sliced = [tuple(r.values()) async for r in conn.cursor(
                    BIG_SQL.format(BIG_ROWS), prefetch=WHOLE_FROM_ROWS + 200)]
            assert sliced == whole
        finally:
            await conn.close()

    asyncio.run(run())


# --- SQLAlchemy and pandas -------------------------------------------------------------------

def test_sqlalchemy_and_pandas(wire_hub: WireHub) -> None:
    pd = pytest.importorskip("pandas")
    sa = pytest.importorskip("sqlalchemy")

    url = sa.engine.URL.create("postgresql+psycopg", username=MEMBER,
                               password=wire_hub.token(MEMBER), host="127.0.0.1",
                               port=wire_hub.pg_port, database=PURPOSE)
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        visible = wire_hub.visible(MEMBER, PURPOSE)
        schemas = {n.split(".")[0] for n in visible}
        assert schemas <= set(inspector.get_schema_names())
        for schema in schemas:
            tables = inspector.get_table_names(schema=schema)
            assert {f"{schema}.{t}" for t in tables} == {n for n in visible
                                                         if n.startswith(schema + ".")}
        cols = inspector.get_columns("passages", schema="traffic")
        assert {c["name"] for c in cols} == visible["traffic.passages"]
        with engine.connect() as conn:
            frame = pd.read_sql(README_SQL, conn)
            assert frame.values.tolist() == _http_rows(wire_hub, README_SQL)
            bound = pd.read_sql(sa.text(PARAM_SQL.format(":v")), conn, params={"v": "car"})
            assert bound.values.tolist() == _http_rows(wire_hub, PARAM_SQL.format("'car'"))
    finally:
        engine.dispose()


# --- pgJDBC -------------------------------------------------------------------------------

def test_pgjdbc(wire_hub: WireHub) -> None:
    install = "apt-get install default-jdk-headless libpostgresql-jdbc-java"
    require_tool(Path(shutil.which("java") or "/usr/bin/java"), "the pgJDBC test", install)
    if not JDBC_JAR.is_file():
        (pytest.fail if CI else pytest.skip)(f"{JDBC_JAR} is missing ({install})")
    url = f"jdbc:postgresql://127.0.0.1:{wire_hub.pg_port}/{PURPOSE}"
    out = subprocess.run(
        ["java", "-cp", str(JDBC_JAR), str(JAVA), url, MEMBER, wire_hub.token(MEMBER),
         README_SQL, PARAM_SQL.format("?"), "car", REFUSED_SQL],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = dict(ln.split(" ", 1) for ln in out.stdout.strip().splitlines())
    _check_catalog(wire_hub, set(json.loads(got["TABLES"])))
    assert json.loads(got["QUERY"]) == _http_rows(wire_hub, README_SQL)
    assert json.loads(got["PREPARED"]) == _http_rows(wire_hub, PARAM_SQL.format("'car'"))
    assert got["REFUSAL"] == "42501"
    receipt = json.loads(got["RECEIPT"])
    assert wire_hub.entry(MEMBER, receipt["index"])["kind"] == "exchange"


# --- zhongshu serve and [hub] pg_port ---------------------------------------------------------

def test_serve_takes_the_pg_port_setting(demo_dir: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    """`zhongshu serve` opens the wire endpoint on `[hub] pg_port` (here from the
    environment, ZHONGSHU_PG_PORT), with its self-signed certificate made in state/."""
    import psycopg

    from tests.conftest import HubProcess, copy_demo_city, free_port, readable_dir
    from zhongshu.node import Node
    from zhongshu.policy.identity import issue_token

    with readable_dir("zs-wire-serve-") as base:
        root = copy_demo_city(demo_dir, base / "city")
        with Node.open(root) as node:
            token = issue_token(node.catalog, MEMBER)
        pg_port = free_port()
        monkeypatch.setenv("ZHONGSHU_PG_PORT", str(pg_port))
        proc = HubProcess(root, free_port(), "serve")
        try:
            with psycopg.connect(host="127.0.0.1", port=pg_port, user=MEMBER,
                                 password=token, dbname=PURPOSE, autocommit=True) as conn:
                assert conn.execute("SELECT count(*) FROM traffic.checkpoints").fetchone()[0]
        finally:
            proc.stop()
        assert (root / "state" / "pg-tls.crt").is_file()
        assert (root / "state" / "pg-tls.key").stat().st_mode & 0o077 == 0
