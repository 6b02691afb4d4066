"""``zhongshu db`` and the store setting, as an operator meets them: a hub on an old schema
refuses to start and names the fix, ``db upgrade`` applies the migrations once, ``demo
--store`` points the demo at PostgreSQL; the store's password shows nowhere."""

from __future__ import annotations

import tomllib
from pathlib import Path

import psycopg
import pytest

from tests.conftest import copy_demo_city, free_port
from tests.stores.pg import ADMIN, fresh_database
from tests.test_cli import zs
from zhongshu.stores import schema

SECRET = "not-to-be-seen-42"


def _with_password(url: str) -> str:
    return url.replace("postgres@", f"postgres:{SECRET}@")  # trust: the server ignores it


def test_db_status_on_an_embedded_city_says_there_is_nothing_to_upgrade(tmp_path: Path) -> None:
    assert zs("init", "tiny", "--dir", str(tmp_path / "tiny")).returncode == 0
    res = zs("db", "status", "--dir", str(tmp_path / "tiny"))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "SQLite files" in res.stderr and "need no upgrade" in res.stderr


@pytest.mark.server
def test_serve_refuses_an_old_schema_until_db_upgrade(tmp_path: Path) -> None:
    city = tmp_path / "tiny"
    assert zs("init", "tiny", "--dir", str(city)).returncode == 0
    with fresh_database(migrate=False) as url:
        env = {"ZHONGSHU_STORE_URL": _with_password(url)}
        res = zs("serve", "--dir", str(city), "--port", str(free_port()), "--no-watch",
                 env=env)
        # its own status (EX_CONFIG): deploy/systemd does not restart it in a loop
        assert res.returncode == 78 and "Traceback" not in res.stderr
        assert "schema version 0" in res.stderr and "`zhongshu db upgrade`" in res.stderr
        assert SECRET not in res.stderr + res.stdout
        res = zs("db", "status", "--dir", str(city), env=env)
        assert res.returncode == 0 and "schema version 0" in res.stdout
        assert "hub_state" in res.stdout and SECRET not in res.stdout
        res = zs("db", "upgrade", "--dir", str(city), env=env)
        assert res.returncode == 0, res.stderr
        assert f"schema version {schema.latest()}." in res.stdout
        again = zs("db", "upgrade", "--dir", str(city), env=env)
        assert again.returncode == 0 and "up to date" in again.stdout
        with psycopg.connect(url) as con:  # the oracle: what the database itself records
            rows = con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
        assert [r[0] for r in rows] == list(range(1, schema.latest() + 1))


@pytest.mark.server
@pytest.mark.slow
def test_demo_store_creates_the_schema_and_writes_the_setting(demo_dir: Path,
                                                              tmp_path: Path) -> None:
    city = tmp_path / "city"
    copy_demo_city(demo_dir, city)  # without its state and its log key's pin
    try:
        with fresh_database(migrate=False) as url:
            res = zs("demo", "--dir", str(city), "--store", _with_password(url), "--no-serve",
                     "--no-witness", "--no-live")
            assert res.returncode == 0, res.stderr
            assert "Creating the hub's schema" in res.stdout and "Wrote [store] url" in res.stdout
            assert SECRET not in res.stdout + res.stderr
            text = (city / "city.toml").read_text()
            assert SECRET not in text
            store = tomllib.loads(text)["store"]
            assert store == {"url": url, "password_secret": "store",
                             "windows_user": "postgres_windows",
                             "windows_password_secret": "windows"}
            held = tomllib.loads((city / "secrets.toml").read_text())["secrets"]
            assert held["store"] == SECRET and len(held["windows"]) >= 24
            assert held["windows"] not in res.stdout + res.stderr
            with psycopg.connect(url) as con:  # the workers' role: it logs in, and owns nothing
                role = con.execute("SELECT rolcanlogin, rolsuper, rolcreaterole FROM pg_roles "
                                   "WHERE rolname = 'postgres_windows'").fetchone()
            assert role == (True, False, False)
            with psycopg.connect(url) as con:  # the demo's members and tokens are in PostgreSQL
                members = {r[0] for r in con.execute("SELECT name FROM members")}
                tokens = con.execute("SELECT count(*) FROM tokens").fetchone()
            assert "cockpit-city" in members and tokens is not None and tokens[0] >= len(members)
            # every command on the folder now finds the store: a token issued lands there too
            res = zs("members", "token", "cockpit-city", "--dir", str(city))
            assert res.returncode == 0, res.stderr
            with psycopg.connect(url) as con:
                after = con.execute("SELECT count(*) FROM tokens").fetchone()
            assert after is not None and after[0] == tokens[0] + 1
            res = zs("demo", "--dir", str(city), "--store", url, "--no-serve", "--no-witness",
                     "--no-live")  # again: nothing to create
            assert res.returncode == 0 and "up to date" in res.stdout
            # the governance changes (tokens issued) are on the ledger in PostgreSQL, and verify
            with psycopg.connect(url) as con:
                entries = con.execute("SELECT count(*) FROM ledger_entries").fetchone()
            assert entries is not None and entries[0] == after[0]
            assert not (city / "state" / "ledger.db").exists()
            res = zs("ledger", "verify", "--dir", str(city))  # reads the log in PostgreSQL: no
            # hub has served it yet, so no checkpoint signs its entries
            assert f"nothing vouches for the log's {entries[0]} entries" in res.stdout, res.stderr
            assert res.returncode == 1 and "Traceback" not in res.stderr

    finally:  # roles are the whole server's: the test leaves none
        with psycopg.connect(ADMIN, autocommit=True) as con:
            con.execute("DROP ROLE IF EXISTS postgres_windows")
