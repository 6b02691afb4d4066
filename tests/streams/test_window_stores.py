"""Both window stores — the embedded SQLite file and a schema of the hub's PostgreSQL store —
count each message once: a NATS message delivered again (after a crash between commit and
acknowledgement) by its sequence number, even by another process; an MQTT message delivered
again (DUP) by its digest, while a second message with the same bytes, not redelivered, is
counted. The windows are checked as a hub on that store serves them, against a fold written
here. On PostgreSQL a replica that lost the streams' lease commits nothing."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from tests.conftest import copy_demo_city
from tests.stores.pg import ADMIN, fresh_database
from tests.streams.test_mqtt import LIVE_FLOW, _events, _oracle, _rounded, _served, stream_block
from zhongshu.config import load_city, window_schema
from zhongshu.errors import ConfigError
from zhongshu.node import Node, stream_service
from zhongshu.streams.service import StreamService

S = "passages-live"


def _city(kind: str, demo_dir: Path, city_tmp: Path, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[tuple[Path, str]]:
    root = copy_demo_city(demo_dir, city_tmp / "city",
                          {"traffic-police": stream_block("mqtt", "unused/here") + LIVE_FLOW})
    if kind == "sqlite":
        yield root, ""
        return
    with fresh_database() as url:
        monkeypatch.setenv("ZHONGSHU_STORE_URL", url)
        yield root, url


@pytest.fixture(params=["sqlite", "postgresql"])
def city(request: pytest.FixtureRequest, demo_dir: Path, city_tmp: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A city with one stream, its state in SQLite files or in a fresh PostgreSQL store (the
    URL, or "")."""
    yield from _city(request.param, demo_dir, city_tmp, monkeypatch)


@pytest.fixture
def pg_city(demo_dir: Path, city_tmp: Path, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[tuple[Path, str]]:
    """The same city on a PostgreSQL store."""
    yield from _city("postgresql", demo_dir, city_tmp, monkeypatch)


def _service(root: Path, url: str) -> StreamService:
    """A stream service handed messages directly, folding (it holds the lease, if any)."""
    streams = stream_service(load_city(root), url)
    streams.start(subscribe=False)
    deadline = time.monotonic() + 10
    while not streams.folding.is_set():
        assert time.monotonic() < deadline, "the streams' lease was not taken"
        time.sleep(0.05)
    return streams


def _payload(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events).encode()


def test_a_nats_message_delivered_again_counts_once(city: tuple[Path, str]) -> None:
    root, url = city
    events = _events(60, seed=3)
    first = _service(root, url)
    try:
        first.deliver(S, _payload(events[:20]), None, seq=1)
        first.deliver(S, _payload(events[20:40]), None, seq=2)
        first.flush()
        first.deliver(S, _payload(events[20:40]), None, seq=2)  # its ack was lost
        first.flush()
        assert first.counters.duplicates == {S: 1}
    finally:
        first.stop()  # as if it died before acknowledging seq 1 and 2: another takes over
    again = _service(root, url)
    try:
        for seq, part in ((1, events[:20]), (2, events[20:40]), (3, events[40:])):
            again.deliver(S, _payload(part), None, seq=seq)
        again.deliver(S, _payload(events[40:]), None, seq=3)  # twice in one batch
        again.flush()
        assert again.counters.duplicates == {S: 3}
        assert again.counters.messages == {S: 1}
    finally:
        again.stop()
    assert _served(root) == _rounded(_oracle(events))


def test_an_mqtt_message_counts_once_when_redelivered_twice_when_sent_twice(
        city: tuple[Path, str]) -> None:
    root, url = city
    events = _events(30, seed=4)
    streams = _service(root, url)
    try:
        streams.deliver(S, _payload(events), None, redelivered=False)
        streams.deliver(S, _payload(events), None, redelivered=False)  # sent twice: counted
        streams.flush()
        streams.deliver(S, _payload(events), None, redelivered=True)  # the broker's DUP
        streams.flush()
        assert streams.counters.duplicates == {S: 1}
    finally:
        streams.stop()
    again = _service(root, url)  # a restart remembers the digests
    try:
        again.deliver(S, _payload(events), None, redelivered=True)
        again.flush()
        assert again.counters.duplicates == {S: 1}
    finally:
        again.stop()
    assert _served(root) == _rounded(_oracle(events + events))


def test_a_replica_that_lost_the_lease_commits_nothing(pg_city: tuple[Path, str]) -> None:
    root, url = pg_city
    events = _events(40, seed=6)
    a = _service(root, url)
    b = stream_service(load_city(root), url)
    b.start(subscribe=False)
    try:
        a.deliver(S, _payload(events[:20]), None, seq=1)
        a.flush()
        lease_pid = a._lease._con.info.backend_pid
        with psycopg.connect(url, autocommit=True) as con:  # its connection cut: lease gone
            con.execute("SELECT pg_terminate_backend(%s)", (lease_pid,))
        a.deliver(S, _payload(events[20:]), None, seq=2)  # before it notices
        a.flush()
        assert a.counters.messages == {S: 1}  # the second was refused by the fence
        deadline = time.monotonic() + 10
        while not b.folding.is_set() or a.folding.is_set():
            assert time.monotonic() < deadline, "the lease did not move to b"
            time.sleep(0.05)
        assert _served(root) == _rounded(_oracle(events[:20]))
        b.deliver(S, _payload(events[20:]), None, seq=2)  # the broker's redelivery, to b
        b.flush()
        assert b.counters.messages == {S: 1}
    finally:
        a.stop()
        b.stop()
    assert _served(root) == _rounded(_oracle(events))


def test_a_value_the_store_refuses_is_rejected_and_the_stream_goes_on(
        city: tuple[Path, str]) -> None:
    root, url = city
    events = _events(20, seed=7)
    poison = [dict(events[0], camera_id="cam-\u0000")]  # PostgreSQL's text refuses NUL
    streams = _service(root, url)
    try:
        streams.deliver(S, _payload(events[:10]), None, seq=1)
        streams.deliver(S, _payload(poison), None, seq=2)
        streams.deliver(S, _payload(events[10:]), None, seq=3)
        streams.flush()
    finally:
        streams.stop()
    served = _served(root)
    kept = _rounded(_oracle(events))
    if url:  # refused by the store: set aside with its reason, the others folded
        assert served == kept
        assert streams.counters.rejected == {S: 1}
    else:  # SQLite takes it: one more window, of that camera
        assert {k: v for k, v in served.items() if k[1] != "cam-\u0000"} == kept


def test_an_mqtt_message_and_its_redelivery_in_one_batch_count_once(
        city: tuple[Path, str]) -> None:
    root, url = city
    events = _events(30, seed=8)
    streams = _service(root, url)
    try:
        streams.deliver(S, _payload(events), None, redelivered=False)
        streams.deliver(S, _payload(events), None, redelivered=True)  # a reconnect's DUP
        streams.flush()
        assert streams.counters.duplicates == {S: 1}
    finally:
        streams.stop()
    assert _served(root) == _rounded(_oracle(events))


def test_waiting_pairs_saved_by_an_older_hub_are_taken_over(tmp_path: Path) -> None:
    from zhongshu.streams.windows import WindowStore

    path = tmp_path / "w.sqlite"
    with sqlite3.connect(path) as con:  # as hubs before pairs_waiting left it on a stop
        con.execute("CREATE TABLE pending_pairs (pairs TEXT NOT NULL, state BLOB NOT NULL)")
        con.execute("INSERT INTO pending_pairs VALUES (?, ?)",
                    ("trips", orjson.dumps([["X", 10.0, "s1", "a1", "t"]])))
    for _ in range(2):  # taken over once, kept after
        store = WindowStore(path, [], [])
        assert store.waiting("trips") == [('"X"', '[10.0,"s1","a1","t"]')]
        store.close()


def test_the_query_workers_read_the_windows_as_a_role_that_reads_nothing_else(
        demo_dir: Path, city_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    role = f"zs_windows_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as con:
        con.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        for root, url in _city("postgresql", demo_dir, city_tmp, monkeypatch):
            monkeypatch.setenv("ZHONGSHU_STORE_PASSWORD_SECRET", "store")
            monkeypatch.setenv("ZHONGSHU_SECRET_STORE", "unused-here")
            with pytest.raises(ConfigError, match="windows_user"):  # no role for the workers:
                Node.open(load_city(root), serve=True)  # a serving hub refuses to start
            monkeypatch.delenv("ZHONGSHU_STORE_PASSWORD_SECRET")
            monkeypatch.setenv("ZHONGSHU_STORE_WINDOWS_USER", "no_such_role")
            with pytest.raises(ConfigError, match="make the role first"):
                stream_service(load_city(root), url)
            monkeypatch.setenv("ZHONGSHU_STORE_WINDOWS_USER", role)
            events = _events(30, seed=9)
            streams = _service(root, url)
            try:
                streams.deliver(S, _payload(events), None, seq=1)
                streams.flush()
            finally:
                streams.stop()
            assert _served(root) == _rounded(_oracle(events))  # read as the role
            as_role = url.replace("postgresql://postgres@", f"postgresql://{role}@")
            with psycopg.connect(as_role) as con:
                schema = window_schema("traffic-police")
                assert con.execute(f'SELECT count(*) FROM "{schema}".traffic__live_flow'
                                   ).fetchone() == (len(_oracle(events)),)
                for table in ("members", "tokens", "ledger_entries"):
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        con.execute(f"SELECT * FROM {table}")
                    con.rollback()
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as con:
            con.execute(f'DROP ROLE IF EXISTS "{role}"')
