"""Who may log in, and what each caller sees, on the wire endpoint — and the SQLSTATE of
each kind of refusal.

The hub here runs in this process (one per module) with the wire endpoint on its own
event loop, so a test can change its grants, members and limits, and can make a loopback
peer look remote (to check the TLS rule without leaving loopback).
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import RunningHub, free_port, readable_dir
from zhongshu.node import Node
from zhongshu.policy.identity import issue_token, revoke_tokens, token_hash
from zhongshu.protocol.pgwire import server

RATE_LIMITED_GRANT = """
[[grants]]
consumer = "outsider"
purposes = ["wire-test"]
datasets = ["traffic.checkpoints"]
columns = ["district"]
rate_limit = 2
"""
HUB_MEMBER = """[member]
name = "hub-peer"
kind = "hub"
title = "A peer hub (it must sign)"
roles = []
"""
TIMEOUT_S = 2.0
HEAVY_SQL = ("SELECT count(*) FROM traffic.passages a, traffic.passages b, "
             "traffic.passages c")


class Wire:
    """The wire endpoint of a running hub, on an event loop of its own."""

    def __init__(self, hub: RunningHub) -> None:
        self.hub = hub
        self.endpoint = hub.node.wire(hub.app)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(
                self.endpoint.start("127.0.0.1", self.port))
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(20)

    def connect(self, member: str, purpose: str, password: str | None = None,
                **extra: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(host="127.0.0.1", port=self.port, user=member, dbname=purpose,
                               password=self.hub.token(member) if password is None
                               else password, autocommit=True, connect_timeout=20, **extra)

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def wire(demo_dir: Path) -> Iterator[Wire]:
    """One hub for the module (a private copy of the demo city, with a rate-limited grant,
    a member of kind ``hub`` and a 2 s time limit), its wire endpoint beside it."""
    with readable_dir("zs-wire-gov-") as root, pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZHONGSHU_QUERY_TIMEOUT_S", str(TIMEOUT_S))
        city = root / "city"
        shutil.copytree(demo_dir, city, ignore=shutil.ignore_patterns("state", "ledger.pin"))
        police = city / "members" / "traffic-police.toml"
        police.write_text(police.read_text() + RATE_LIMITED_GRANT)
        (city / "members" / "hub-peer.toml").write_text(HUB_MEMBER)
        node = Node.open(city, serve=True, monitor=False)
        hub = RunningHub(node, city)
        w = Wire(hub)
        try:
            yield w
        finally:
            w.stop()
            hub.stop()
            node.close()


def _user_tables(conn: psycopg.Connection[Any]) -> set[str]:
    return {f"{s}.{t}" for s, t in conn.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')").fetchall()}


def _refusal(hub: RunningHub, member: str, sql: str, purpose: str) -> tuple[int, dict[str, Any]]:
    import httpx

    r = httpx.post(f"{hub.url}/v1/query", json={"sql": sql, "purpose": purpose},
                   headers={"Authorization": f"Bearer {hub.token(member)}"}, timeout=60)
    return r.status_code, r.json()


def test_callers_see_only_what_they_may_read(wire: Wire) -> None:
    with wire.connect("outsider", "city-operations") as conn:
        assert _user_tables(conn) == set()
        assert conn.execute("SELECT count(*) FROM pg_catalog.pg_class c JOIN "
                            "pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE "
                            "n.nspname NOT IN ('pg_catalog', 'information_schema')"
                            ).fetchone() == (0,)
    with wire.connect("cockpit-xihu", "district-operations") as conn:
        tables = _user_tables(conn)
        assert "traffic.checkpoints" in tables
        rows = conn.execute("SELECT DISTINCT district FROM traffic.checkpoints").fetchall()
        assert rows == [("xihu",)]
        status, body = _refusal(wire.hub, "cockpit-xihu",
                                "SELECT DISTINCT district FROM traffic.checkpoints",
                                "district-operations")
        assert status == 200 and body["rows"] == [["xihu"]]


def test_catalog_queries_are_counted_not_recorded(wire: Wire) -> None:
    import httpx

    def catalog_count() -> int:
        text = httpx.get(f"{wire.hub.url}/metrics", timeout=10).text
        line = [ln for ln in text.splitlines()
                if ln.startswith('zhongshu_wire_events_total{event="catalog"}')]
        return int(line[0].split()[-1]) if line else 0

    with wire.connect("cockpit-city", "city-operations") as conn:
        login = conn.execute("SHOW zhongshu.receipt").fetchone()[0]
        before = catalog_count()
        for _ in range(3):
            conn.execute("SELECT relname FROM pg_catalog.pg_class").fetchall()
        assert catalog_count() == before + 3
        assert conn.execute("SHOW zhongshu.receipt").fetchone()[0] == login  # no entry


def test_a_wrong_token_says_nothing_of_the_member(wire: Wire) -> None:
    messages = []
    for member in ("cockpit-city", "no-such-member"):
        with pytest.raises(psycopg.OperationalError) as e:
            wire.connect(member, "city-operations", password="zs_not-a-token")
        messages.append(str(e.value).replace(member, "USER"))
    assert messages[0] == messages[1]
    assert "password authentication failed" in messages[0]
    # a valid token of another member is refused the same way
    with pytest.raises(psycopg.OperationalError) as e:
        wire.connect("cockpit-city", "city-operations",
                     password=wire.hub.token("cockpit-xihu"))
    assert str(e.value).replace("cockpit-city", "USER") == messages[0]


def test_a_hub_member_is_refused(wire: Wire) -> None:
    token = issue_token(wire.hub.service.catalog, "hub-peer")
    with pytest.raises(psycopg.OperationalError) as e:
        wire.connect("hub-peer", "city-operations", password=token)
    assert "must sign" in str(e.value)


def test_a_revoked_token_ends_its_sessions(wire: Wire, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    monkeypatch.setattr(server, "LIVE_CHECK_S", 0.0)  # re-checked before every statement
    catalog = wire.hub.service.catalog
    token = issue_token(catalog, "outsider", label="wire-revoke")
    with wire.connect("outsider", "wire-test", password=token) as conn:
        sql = "SELECT count(*) FROM pg_catalog.pg_class"  # (its rate limit is for another test)
        assert conn.execute(sql).fetchone()[0] >= 0
        catalog.store.revoke_tokens("outsider", token_hash(token)[:12])
        with pytest.raises(psycopg.OperationalError) as e:
            conn.execute(sql).fetchall()
        assert "revoked or expired" in str(e.value)
        assert conn.closed or conn.broken


def test_a_token_revoked_by_the_cli_ends_its_sessions_within_a_second(wire: Wire) -> None:
    catalog = wire.hub.service.catalog
    token = issue_token(catalog, "outsider", label="wire-revoke-cli")
    with wire.connect("outsider", "wire-test", password=token) as conn:
        sql = "SELECT count(*) FROM pg_catalog.pg_class"
        assert conn.execute(sql).fetchone()[0] >= 0
        # as `zhongshu members revoke` does, from another process or another replica: the
        # change recorded is what the session notices (its 5 s re-check is not waited for)
        assert revoke_tokens(catalog, "outsider", token_hash(token)[:12], actor="test") == 1
        t0 = time.monotonic()
        with pytest.raises(psycopg.OperationalError) as e:
            while time.monotonic() - t0 < 3:
                conn.execute(sql).fetchall()
                time.sleep(0.05)
        took = time.monotonic() - t0
        assert "revoked or expired" in str(e.value) and took < 1, took


def test_password_login_off_loopback_needs_tls(wire: Wire, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    monkeypatch.setattr(server.Session, "_loopback", lambda self: False)  # a remote peer
    with pytest.raises(psycopg.OperationalError) as e:
        wire.connect("cockpit-city", "city-operations", sslmode="disable")
    assert "needs TLS" in str(e.value)
    with wire.connect("cockpit-city", "city-operations", sslmode="require") as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("SELECT count(*) FROM traffic.checkpoints").fetchone()[0] > 0


def test_a_silent_client_loses_its_slot(wire: Wire, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import time

    monkeypatch.setattr(server, "LOGIN_TIMEOUT_S", 0.5)
    with socket.create_connection(("127.0.0.1", wire.port), timeout=10) as s:
        t0 = time.monotonic()
        assert s.recv(1) == b""  # closed by the hub, not by us
        assert time.monotonic() - t0 < 5


def test_a_remote_peer_is_not_loopback() -> None:
    class Writer:
        def __init__(self, peer: tuple[str, int]) -> None:
            self.peer = peer

        def get_extra_info(self, name: str) -> Any:
            return self.peer if name == "peername" else None

    def looks_local(host: str) -> bool:
        s = server.Session.__new__(server.Session)
        s.writer = Writer((host, 5000))  # type: ignore[assignment]
        return s._loopback()

    assert looks_local("127.0.0.1") and looks_local("::1") and looks_local("127.8.9.1")
    assert not looks_local("10.0.0.5") and not looks_local("192.168.1.4")
    assert not looks_local("203.0.113.9")


def _sqlstate(conn: psycopg.Connection[Any], sql: str) -> tuple[str, str]:
    with pytest.raises(psycopg.Error) as e:
        conn.execute(sql)
    return str(e.value.sqlstate), str(e.value.diag.message_primary)


def test_sqlstates(wire: Wire) -> None:
    with wire.connect("cockpit-city", "city-operations") as conn:
        state, message = _sqlstate(conn, "SELECT plate FROM traffic.passages")
        status, body = _refusal(wire.hub, "cockpit-city", "SELECT plate FROM traffic.passages",
                                "city-operations")
        assert (state, message) == ("42501", body["error"]["message"]) and status == 403
        state, message = _sqlstate(conn, "SELECT * FROM nothing.here")
        status, body = _refusal(wire.hub, "cockpit-city", "SELECT * FROM nothing.here",
                                "city-operations")
        assert (state, message) == ("42P01", body["error"]["message"]) and status == 404
        state, message = _sqlstate(conn, HEAVY_SQL)
        assert state == "57014", message
        # the session goes on after a time limit
        assert conn.execute("SELECT count(*) FROM traffic.checkpoints").fetchone()[0] > 0
    with wire.connect("outsider", "wire-test") as conn:
        states = []
        for _ in range(3):
            try:
                conn.execute("SELECT count(*) FROM traffic.checkpoints").fetchall()
                states.append("ok")
            except psycopg.Error as e:
                states.append(str(e.sqlstate))
        assert states == ["ok", "ok", "53400"], states


def test_set_show_and_settings_answer_as_clients_expect(wire: Wire) -> None:
    with wire.connect("cockpit-city", "city-operations") as conn:
        assert conn.execute("SHOW standard_conforming_strings").fetchone() == ("on",)
        conn.execute("SET application_name = 'dashboards'")
        assert conn.execute("SHOW application_name").fetchone() == ("dashboards",)
        assert conn.execute("SELECT current_setting('application_name')").fetchone() == \
            ("dashboards",)
        assert conn.execute("SELECT current_database(), current_user").fetchone() == \
            ("city-operations", "cockpit-city")
        assert conn.execute("SELECT version()").fetchone()[0].startswith("PostgreSQL ")
        assert _sqlstate(conn, "SHOW no_such_setting")[0] == "42704"
        assert _sqlstate(conn, "SET zhongshu.receipt = 'x'")[0] == "55P02"
        # DuckDB's own settings and introspection are not the emulation's
        state, _ = _sqlstate(conn, "SELECT current_setting('allowed_directories')")
        assert state == "42501"
        assert _sqlstate(conn, "SELECT * FROM duckdb_settings()")[0] in ("42501", "42P01")
