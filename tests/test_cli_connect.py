"""``zhongshu connect`` and ``zhongshu sources list`` as a newcomer runs them: on a real
PostgreSQL and MariaDB database and on a folder of CSV files, each column classified as
expected, the password only in secrets.toml, the file passing ``catalog check``, and the new
dataset answering through the hub once the owner has listed and granted it."""

from __future__ import annotations

import hashlib
import random
import tomllib
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from tests.catalog.test_propose import mod11_2
from tests.conftest import require_server
from tests.test_cli import zs
from zhongshu.demo.city import ServerSettings

SERVERS = ServerSettings.from_env()
PASSWORD = "pw-Zs-7f3a9c"  # trust authentication on loopback: any password is accepted
CITY = """[city]
name = "puer"

[[districts]]
name = "simao"
code = "530802"
name_zh = "思茅区"

[[districts]]
name = "ninger"
code = "530821"
name_zh = "宁洱县"
"""
# column → (classification, identifies) proposed for the table of _people()
EXPECTED = {
    "rec_id": ("internal", None), "owner_name": ("personal", None),
    "car": ("personal", "plate"), "idn": ("sensitive", "id_number"),
    "serial": ("internal", None), "contact": ("personal", None), "qu": ("internal", None),
    "fee": ("internal", None), "note": ("internal", None)}


def _people(n: int = 60) -> list[tuple[Any, ...]]:
    """Rows of a registration table: a person's name, plate (ordinary and new-energy), id
    number (valid check character), an 18-digit serial whose check character is wrong,
    a mobile number, a district and two ordinary columns."""
    rnd = random.Random(11)
    rows = []
    for i in range(n):
        born = date(1950, 1, 1) + timedelta(days=rnd.randrange(0, 365 * 60))
        body = f"530802{born:%Y%m%d}{rnd.randrange(1000):03d}"
        right = mod11_2(body)
        wrong = next(c for c in "0123456789" if c != right)
        plate = "云J" + ("D" + f"{rnd.randrange(10**5):05d}" if i % 3 == 0 else
                        "".join(rnd.choice("0123456789ABCDEFGHJK") for _ in range(5)))
        rows.append((i + 1, rnd.choice(["王伟", "李娜", "张敏", "刘洋", "陈静"]), plate,
                     body + right, body + wrong, f"1{rnd.choice('3589')}{rnd.randrange(10**9):09d}",
                     rnd.choice(["simao", "ninger"]), Decimal(rnd.randrange(100, 9000)) / 100,
                     rnd.choice(["paid", "late", "waived"])))
    return rows


def _city(root: Path) -> Path:
    (root / "members").mkdir(parents=True)
    (root / "city.toml").write_text(CITY, encoding="utf-8")
    return root


def _proposed(root: Path, member: str) -> dict[str, dict[str, Any]]:
    """Dataset → its proposal, read back from the member file as TOML."""
    doc = tomllib.loads((root / "members" / f"{member}.toml").read_text(encoding="utf-8"))
    return {d["name"]: d for d in doc.get("datasets", [])}


def _classes(dataset: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {c["name"]: (c["classification"], c.get("identifies")) for c in dataset["columns"]}


@pytest.fixture
def pg_db() -> Iterator[str]:
    """A fresh PostgreSQL database holding ``registrations`` (dropped after)."""
    require_server("PostgreSQL", 5432)
    name = f"zs_conn_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(**SERVERS.pg, dbname="postgres", autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    try:
        with psycopg.connect(**SERVERS.pg, dbname=name, autocommit=True) as c:
            c.execute("CREATE TABLE registrations (rec_id integer PRIMARY KEY, "
                      "owner_name text, car text, idn text, serial text, contact text, "
                      "qu text, fee numeric(10,2), note text)")
            with c.cursor() as cur:
                cur.executemany("INSERT INTO registrations VALUES "
                                "(%s, %s, %s, %s, %s, %s, %s, %s, %s)", _people())
        yield name
    finally:
        with psycopg.connect(**SERVERS.pg, dbname="postgres", autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _pg_fingerprint(db: str) -> tuple[Any, ...]:
    """What the database holds (tables, and every row of the table), read directly."""
    with psycopg.connect(**SERVERS.pg, dbname=db, autocommit=True) as c:
        tables = c.execute("SELECT table_schema, table_name FROM information_schema.tables "
                           "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
                           "ORDER BY 1, 2").fetchall()
        rows = c.execute("SELECT md5(string_agg(r::text, '|' ORDER BY rec_id)) "
                         "FROM registrations r").fetchone()
    return tuple(tables), rows


@pytest.mark.server
def test_connect_postgres_proposes_grantable_datasets(pg_db: str, city_tmp: Path) -> None:
    from zhongshu.node import Node, Stores
    from zhongshu.policy.identity import Caller

    root = _city(city_tmp / "puer")
    before = _pg_fingerprint(pg_db)
    url = f"postgresql://{SERVERS.pg['user']}:{PASSWORD}@127.0.0.1:{SERVERS.pg['port']}/{pg_db}"
    res = zs("connect", "--dir", str(root), "--member", "land-bureau", "--url", url)
    assert res.returncode == 0, res.stderr
    assert _pg_fingerprint(pg_db) == before  # the source was read, never written
    # the password: in secrets.toml only, never printed nor in the member file
    member_text = (root / "members" / "land-bureau.toml").read_text(encoding="utf-8")
    assert PASSWORD not in member_text + res.stdout + res.stderr
    secrets = tomllib.loads((root / "secrets.toml").read_text(encoding="utf-8"))["secrets"]
    doc = tomllib.loads(member_text)
    (source,) = doc["sources"]
    assert secrets[source["password_secret"]] == PASSWORD
    assert (root / "secrets.toml").stat().st_mode & 0o077 == 0
    ds = _proposed(root, "land-bureau")["land_bureau.registrations"]
    assert _classes(ds) == EXPECTED
    assert ds["listed"] is False and ds["area_column"] == "qu"
    assert "GB 11643" in member_text  # the evidence, beside the proposal
    for r in _people():  # …which never quotes a value
        assert r[2] not in member_text and r[3] not in member_text
    assert "Tables found: 1; datasets proposed: 1" in res.stdout
    assert "idn" in res.stdout and "sensitive" in res.stdout
    check = zs("catalog", "check", "--dir", str(root))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "ok          land_bureau.registrations" in check.stdout

    # the owner confirms: lists it and grants it to a consumer
    (root / "members" / "land-bureau.toml").write_text(
        member_text.replace("listed = false", "listed = true")
        + '\n[[grants]]\nconsumer = "stats"\ndatasets = ["land_bureau.registrations"]\n'
          'purposes = ["research"]\n', encoding="utf-8")
    (root / "members" / "stats.toml").write_text(
        '[member]\nname = "stats"\nkind = "consumer"\n', encoding="utf-8")
    with Node.open(root, stores=Stores.memory(), monitor=False) as node:
        caller = Caller(node.catalog.members["stats"])
        got = node.query.run(caller, "SELECT qu, count(*) AS n, sum(fee) AS fee FROM "
                             "land_bureau.registrations GROUP BY qu ORDER BY qu",
                             "research").table.to_pylist()
        from zhongshu.errors import ColumnNotGranted

        with pytest.raises(ColumnNotGranted):  # personal: not granted by default
            node.query.run(caller, "SELECT car FROM land_bureau.registrations", "research")
    with psycopg.connect(**SERVERS.pg, dbname=pg_db, autocommit=True) as c:
        want = c.execute("SELECT qu, count(*), sum(fee) FROM registrations GROUP BY qu "
                         "ORDER BY qu").fetchall()
    assert [(r["qu"], r["n"], Decimal(str(r["fee"]))) for r in got] == \
        [(q, n, Decimal(str(f))) for q, n, f in want]


@pytest.fixture
def my_db() -> Iterator[str]:
    require_server("MariaDB", 3306)
    name = f"zs_conn_{uuid.uuid4().hex[:8]}"
    conn = pymysql.connect(**SERVERS.mysql, autocommit=True, charset="utf8mb4")
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
            cur.execute(f"CREATE TABLE {name}.registrations (rec_id int PRIMARY KEY, "
                        "owner_name varchar(20), car varchar(12), idn char(18), "
                        "serial char(18), contact varchar(20), qu varchar(20), "
                        "fee decimal(10,2), note varchar(20))")
            cur.executemany(f"INSERT INTO {name}.registrations VALUES "
                            "(%s, %s, %s, %s, %s, %s, %s, %s, %s)", _people())
        yield name
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.close()


@pytest.mark.server
def test_connect_mariadb(my_db: str, city_tmp: Path) -> None:
    root = _city(city_tmp / "puer")
    url = f"mysql://{SERVERS.mysql['user']}@127.0.0.1:{SERVERS.mysql['port']}/{my_db}"
    res = zs("connect", "--dir", str(root), "--member", "land-bureau", "--url", url)
    assert res.returncode == 0, res.stderr
    assert not (root / "secrets.toml").exists()  # no password, no secret
    ds = _proposed(root, "land-bureau")["land_bureau.registrations"]
    assert _classes(ds) == EXPECTED and ds["area_column"] == "qu"
    check = zs("catalog", "check", "--dir", str(root))
    assert check.returncode == 0, check.stdout + check.stderr
    listed = zs("sources", "list", "--dir", str(root))
    assert listed.returncode == 0, listed.stderr
    assert "land-bureau-db" in listed.stdout and "mysql" in listed.stdout
    if (SERVERS.mysql["port"], SERVERS.mysql["user"]) != (3306, "root"):
        return
    # the same system named with the defaults left out: recognised, nothing added
    text = (root / "members" / "land-bureau.toml").read_text(encoding="utf-8")
    again = zs("connect", "--dir", str(root), "--member", "land-bureau", "--url",
               f"mysql://127.0.0.1/{my_db}")
    assert again.returncode == 0, again.stderr
    assert "already land_bureau.registrations" in again.stdout
    assert (root / "members" / "land-bureau.toml").read_text(encoding="utf-8") == text


def test_connect_a_csv_folder_with_chinese_headers(city_tmp: Path) -> None:
    root = _city(city_tmp / "puer")
    folder = root / "data" / "registry"
    folder.mkdir(parents=True)
    lines = ["编号,姓名,车牌号,身份证号,流水号,手机号,区县,金额,备注"]
    lines += [",".join(str(v) for v in r) for r in _people()]
    (folder / "registrations.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "districts.csv").write_text("district,name_zh,population\nsimao,思茅区,330000\n"
                                          "ninger,宁洱县,190000\n", encoding="utf-8")
    before = hashlib.sha256((folder / "registrations.csv").read_bytes()).hexdigest()
    res = zs("connect", "--dir", str(root), "--member", "civil", "--url",
             f"file://{folder}")
    assert res.returncode == 0, res.stderr
    assert hashlib.sha256((folder / "registrations.csv").read_bytes()).hexdigest() == before
    proposed = _proposed(root, "civil")
    reg = proposed["civil.registrations"]
    got = {c["description"].removeprefix("source column ") if c.get("expr") else c["name"]:
           (c["name"], c["classification"]) for c in reg["columns"]}
    assert got == {"编号": ("no", "internal"), "姓名": ("name", "personal"),
                   "车牌号": ("plate", "personal"), "身份证号": ("id_number", "sensitive"),
                   "流水号": ("column_1", "internal"), "手机号": ("phone", "personal"),
                   "区县": ("district", "internal"), "金额": ("amount", "internal"),
                   "备注": ("column_2", "internal")}
    # the serial's check characters are wrong: CSV read as integers (or text), not ids
    assert reg["area_column"] == "district"
    assert proposed["civil.districts"]["area_column"] == "district"
    doc = tomllib.loads((root / "members" / "civil.toml").read_text(encoding="utf-8"))
    assert doc["sources"] == [{"name": "civil-db", "kind": "csv", "path": "data/registry"}]
    check = zs("catalog", "check", "--dir", str(root))
    assert check.returncode == 0, check.stdout + check.stderr
    # the owner confirms one, then the rest: only the `listed` lines change
    text = (root / "members" / "civil.toml").read_text(encoding="utf-8")
    one = zs("catalog", "confirm", "civil.districts", "--dir", str(root))
    assert one.returncode == 0, one.stderr
    assert "Listed civil.districts" in one.stdout
    rest = zs("catalog", "confirm", "--member", "civil", "--dir", str(root))
    assert rest.returncode == 0, rest.stderr
    assert "Listed civil.registrations" in rest.stdout and "civil.districts" not in rest.stdout
    assert "has no description yet" in rest.stderr
    after = (root / "members" / "civil.toml").read_text(encoding="utf-8")
    assert after.splitlines() == [line.replace("listed = false", "listed = true")
                                  for line in text.splitlines()]
    assert all(d["listed"] for d in _proposed(root, "civil").values())
    again = zs("catalog", "confirm", "--member", "civil", "--dir", str(root))
    assert again.returncode == 0 and "listed already" in again.stdout
    wrong = zs("catalog", "confirm", "civil.nothing", "--dir", str(root))
    assert wrong.returncode != 0 and "no dataset `civil.nothing`" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    assert (root / "members" / "civil.toml").read_text(encoding="utf-8") == after


def test_connect_errors_are_one_line_and_keep_the_password(city_tmp: Path) -> None:
    import socket

    root = _city(city_tmp / "puer")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for url, words in ((f"postgresql://u:{PASSWORD}@127.0.0.1:{port}/db", "connection refused"),
                       (f"mysql://u:{PASSWORD}@127.0.0.1:{port}/db", "connection refused"),
                       (f"ftp://u:{PASSWORD}@host/x", "unknown URL scheme `ftp`"),
                       ("sqlite:///nowhere/x.db", "no SQLite file")):
        res = zs("connect", "--dir", str(root), "--member", "dept", "--url", url)
        assert res.returncode == 1, res.stdout
        assert words in res.stderr and "Traceback" not in res.stderr, res.stderr
        assert PASSWORD not in res.stdout + res.stderr
    assert not list((root / "members").iterdir()) and not (root / "secrets.toml").exists()


def test_sources_list_shows_health(city_tmp: Path) -> None:
    import sqlite3

    root = _city(city_tmp / "puer")
    con = sqlite3.connect(root / "parks.db")
    con.execute("CREATE TABLE trees (tree_id INTEGER, species TEXT, qu TEXT)")
    con.execute("INSERT INTO trees VALUES (1, 'ginkgo', 'simao')")
    con.commit()
    con.close()
    assert zs("connect", "--dir", str(root), "--member", "parks", "--url",
              "sqlite:parks.db").returncode == 0
    res = zs("sources", "list", "--dir", str(root))
    assert res.returncode == 0, res.stderr
    line = next(ln for ln in res.stdout.splitlines() if "parks-db" in ln)
    assert "sqlite" in line and "parks.db" in line and "ok" in line
    (root / "parks.db").rename(root / "parks-moved.db")
    res = zs("sources", "list", "--dir", str(root))
    line = next(ln for ln in res.stdout.splitlines() if "parks-db" in ln)
    assert "down: not found" in line, res.stdout
