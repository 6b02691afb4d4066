"""What the PostgreSQL stores add to the contract: two store objects on one database (two
replicas of the hub) share one state, the schema is versioned, and no message shows the
store's password."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from tests.stores.pg import fresh_database
from zhongshu.errors import StoreOutdated, StoreUnavailable
from zhongshu.stores import postgres, schema

pytestmark = pytest.mark.server


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_database() as u:
        yield u


@pytest.fixture
def db(url: str) -> Iterator[postgres.Database]:
    d = postgres.Database(url)
    yield d
    d.close()


def test_a_nonce_spent_on_one_replica_is_refused_on_another(url: str) -> None:
    a, b = postgres.PostgresNonceStore(url), postgres.PostgresNonceStore(url)
    try:
        assert a.spend("key1|n1", now=100.0, ttl_s=60) is True
        assert b.spend("key1|n1", now=101.0, ttl_s=60) is False
        assert b.spend("key1|n2", now=101.0, ttl_s=60) is True
        assert a.spend("key1|n2", now=102.0, ttl_s=60) is False
        assert b.spend("key1|n1", now=161.0, ttl_s=60) is True  # forgotten after its time
    finally:
        a.close()
        b.close()


def test_a_nonce_raced_by_many_is_spent_once(db: postgres.Database) -> None:
    stores = [postgres.PostgresNonceStore(db) for _ in range(2)]
    won: list[bool] = []
    barrier = threading.Barrier(8)

    def race(i: int) -> None:
        barrier.wait()
        won.append(stores[i % 2].spend("k|raced", now=10.0, ttl_s=60))

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == [False] * 7 + [True]


def test_sessions_rates_and_lookups_are_shared(db: postgres.Database) -> None:
    s1, s2 = postgres.PostgresSessionStore(db), postgres.PostgresSessionStore(db)
    s1.put(b"h1", "cockpit-city", "t1", 200.0, now=100.0)
    assert s2.get(b"h1", now=150.0) == ("cockpit-city", "t1", 200.0)
    s2.delete(b"h1")
    assert s1.get(b"h1", now=150.0) is None
    r1, r2 = postgres.PostgresRateCounters(db), postgres.PostgresRateCounters(db)
    assert r1.hit("g", 2, 60, now=0.0) is None and r2.hit("g", 2, 60, now=1.0) is None
    assert r1.hit("g", 2, 60, now=2.0) == pytest.approx(58.0)  # both replicas' hits count
    l1, l2 = postgres.PostgresLookupCounts(db), postgres.PostgresLookupCounts(db)
    assert l1.spend("c|p", ["a", "b"], 3, 100, now=0.0) is None
    assert l2.spend("c|p", ["c", "d"], 3, 100, now=1.0) == 2
    assert l2.count("c|p", 100, now=1.0) == 2


def test_a_rate_limit_holds_under_concurrent_replicas(db: postgres.Database) -> None:
    counters = [postgres.PostgresRateCounters(db) for _ in range(2)]
    allowed: list[bool] = []

    def hammer(i: int) -> None:
        for _ in range(10):
            allowed.append(counters[i % 2].hit("grant-x", 7, 60, now=5.0) is None)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 7 and len(allowed) == 40


def test_changes_seen_by_another_replica_in_order(db: postgres.Database) -> None:
    a, b = postgres.PostgresMetadataStore(db), postgres.PostgresMetadataStore(db)
    a.add_grant("g1", "o", {"consumer": "c"}, "cli:x")
    a.record_change("cli:x", "grant.add", "g1")
    assert b.version() == 1 and [g[0] for g in b.stored_grants()] == ["g1"]
    b.revoke_grant("g1", "cli:y")
    b.record_change("cli:y", "grant.revoke", "g1")
    assert a.stored_grants() == [] and [c["action"] for c in a.changes()] == \
        ["grant.add", "grant.revoke"]


# --- the schema ----------------------------------------------------------------------------

def test_an_empty_database_is_refused_until_upgraded() -> None:
    with fresh_database(migrate=False) as url:
        db = postgres.Database(url)
        try:
            st = schema.status(db)
            assert (st.current, st.latest) == (0, schema.latest())
            assert [m.version for m in st.pending] == list(range(1, schema.latest() + 1))
            with pytest.raises(StoreOutdated, match="zhongshu db upgrade"):
                schema.require_current(db)
            applied = schema.upgrade(db)
            assert [m.version for m in applied] == [m.version for m in st.pending]
            assert schema.upgrade(db) == []  # nothing twice
            assert schema.require_current(db).up_to_date
            with db.connection() as con:
                rows = con.execute("SELECT version, name FROM schema_version ORDER BY 1")
                assert [(v, n) for v, n in rows] == [(m.version, m.name)
                                                     for m in schema.migrations()]
        finally:
            db.close()


def test_two_upgrades_at_once_apply_each_migration_once() -> None:
    with fresh_database(migrate=False) as url:
        dbs = [postgres.Database(url) for _ in range(2)]
        done: list[int] = []
        errors: list[BaseException] = []

        def run(db: postgres.Database) -> None:
            try:
                done.extend(m.version for m in schema.upgrade(db))
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=run, args=(d,)) for d in dbs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for d in dbs:
            d.close()
        assert not errors and sorted(done) == list(range(1, schema.latest() + 1))


def test_a_store_behind_a_migration_is_outdated(db: postgres.Database) -> None:
    with db.connection() as con:  # as if the code shipped one more migration than applied
        con.execute("DELETE FROM schema_version WHERE version = %s", (schema.latest(),))
    with pytest.raises(StoreOutdated) as e:
        schema.require_current(db)
    assert f"needs {schema.latest()}" in e.value.message


# --- secrets -------------------------------------------------------------------------------

def test_the_password_is_never_in_a_message() -> None:
    secret = "s3cr3t-Pa55"
    port = free_port()  # nothing listens there
    with pytest.raises(StoreUnavailable) as e:
        postgres.Database(f"postgresql://hub:{secret}@127.0.0.1:{port}/city", timeout_s=1)
    assert secret not in str(e.value) and f"127.0.0.1:{port}/city" in str(e.value)
    assert e.value.__cause__ is None and e.value.__suppress_context__


@pytest.mark.parametrize("secret", ["ab%zzXYZZY", "se XYZZY"])
def test_a_url_that_does_not_parse_is_refused_without_quoting_it(secret: str) -> None:
    with pytest.raises(StoreUnavailable) as e:
        postgres.Database(f"postgresql://hub:{secret}@127.0.0.1:5432/city", timeout_s=1)
    assert "does not parse" in str(e.value)
    assert "XYZZY" not in str(e.value)


def test_a_label_never_holds_the_password_in_any_form() -> None:
    for url in ("postgresql://hub:hunter22@db:5433/city",
                "host=db port=5433 dbname=city user=hub password=hunter22",
                "postgresql://hub@db:5433/city?password=hunter22"):
        assert postgres.label_of(url) == "postgresql://db:5433/city"


def test_a_statements_own_failure_does_not_make_the_store_look_away() -> None:
    """A query cancelled by a time limit, or one pooled connection ended by the server (an
    administrator, an idle timeout), fails that call only: the next calls are served. Only a
    server that does not take a new connection makes calls fail at once."""
    import psycopg

    from zhongshu.stores.postgres import Database

    def served(db: Database) -> int:
        ok = 0
        for _ in range(20):
            try:
                with db.connection() as con:
                    con.execute("SELECT 1")
                ok += 1
            except StoreUnavailable:
                pass
        return ok

    with fresh_database() as url:
        db = Database(url, max_size=2)
        try:
            with pytest.raises(StoreUnavailable), db.connection() as con:
                con.execute("SET statement_timeout = 50")
                con.execute("SELECT pg_sleep(1)")
            assert not db.away and served(db) == 20
            with db.connection() as con:
                pid = con.info.backend_pid
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            time.sleep(0.2)
            failed = 20 - served(db)  # the ended connection fails its own call, at most
            assert failed <= 1 and not db.away
        finally:
            db.close()
