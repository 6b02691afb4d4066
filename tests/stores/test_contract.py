"""One contract suite, run on every implementation of each store (SQLite, in-memory and
PostgreSQL — the last on a fresh database per test, marked ``server``).

A new implementation joins by adding one fixture parameter.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.stores.pg import fresh_database
from zhongshu.stores import memory, postgres, sqlite

KINDS = ["sqlite", "memory", pytest.param("postgres", marks=pytest.mark.server)]


def _store_fixture(sqlite_cls: type, memory_cls: type, postgres_cls: type) -> Any:
    """A fixture giving each implementation of one store in turn, closed afterwards."""
    @pytest.fixture(params=KINDS)
    def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
        if request.param == "postgres":
            with fresh_database() as url:
                made = postgres_cls(url)
                yield made
                made.close()
            return
        made = sqlite_cls(tmp_path / "state" / "hub.db") if request.param == "sqlite" \
            else memory_cls()
        yield made
        made.close()
    return store


metadata = _store_fixture(sqlite.SqliteMetadataStore, memory.MemoryMetadataStore,
                          postgres.PostgresMetadataStore)
nonces = _store_fixture(sqlite.SqliteNonceStore, memory.MemoryNonceStore,
                        postgres.PostgresNonceStore)
sessions = _store_fixture(sqlite.SqliteSessionStore, memory.MemorySessionStore,
                          postgres.PostgresSessionStore)
rates = _store_fixture(sqlite.SqliteRateCounters, memory.MemoryRateCounters,
                       postgres.PostgresRateCounters)


# --- metadata ---------------------------------------------------------------------------------

def test_members_and_tokens(metadata: Any) -> None:
    metadata.upsert_member("traffic-police", "department", "Traffic police", ["owner"])
    metadata.upsert_member("app-parking", "scenario", "Parking", [])
    metadata.upsert_member("traffic-police", "department", "交警", ["owner", "auditor"])
    metadata.add_token("h1", "traffic-police", "cli")
    metadata.add_token("h2", "traffic-police", expires_at=1000.0)
    assert metadata.token_member("h1") == "traffic-police"
    assert metadata.token_member("h2", now=999.0) == "traffic-police"
    assert metadata.token_member("h2", now=1000.0) is None  # expiry is exclusive
    assert metadata.token_member("nope") is None
    with pytest.raises(ValueError):
        metadata.add_token("h1", "app-parking")
    rows = {m["name"]: m for m in metadata.members()}
    assert [m["name"] for m in metadata.members()] == ["app-parking", "traffic-police"]
    assert rows["traffic-police"]["title"] == "交警"
    assert rows["traffic-police"]["roles"] == '["owner", "auditor"]'
    assert rows["traffic-police"]["tokens"] == 1  # h2 expired long ago
    assert rows["app-parking"]["tokens"] == 0


def test_revoke_tokens_all_or_by_prefix(metadata: Any) -> None:
    for h in ("aa11", "aa22", "bb33"):
        metadata.add_token(h, "m")
    metadata.add_token("cc44", "other")
    assert metadata.revoke_tokens("m", "aa1") == 1
    assert metadata.token_member("aa11") is None
    assert metadata.token_member("aa22") == "m"
    assert metadata.revoke_tokens("m", "%") == 2  # a wildcard is not a pattern
    assert metadata.revoke_tokens("m") == 0
    assert metadata.token_member("cc44") == "other"


def test_keys(metadata: Any) -> None:
    metadata.add_key("k1", "hub-xihu", b"\x01" * 32)
    assert metadata.key("k1") == ("hub-xihu", b"\x01" * 32)
    assert metadata.key("k2") is None
    with pytest.raises(ValueError):
        metadata.add_key("k1", "other", b"\x02" * 32)


def test_changes_are_numbered_and_hooked(metadata: Any) -> None:
    seen: list[tuple[str, str, str, dict[str, Any]]] = []
    assert metadata.version() == 0
    metadata.on_change = lambda *a: seen.append(a)
    details = {"n": 1, "when": object()}  # not JSON: stored as its text
    s1 = metadata.record_change("cli:ops", "token.issue", "m", details)
    s2 = metadata.record_change("member:m", "grant.add", "g1")
    assert (s1, s2) == (1, 2)
    assert metadata.version() == 2
    got = metadata.changes()
    assert [c["seq"] for c in got] == [1, 2]
    assert got[0]["actor"] == "cli:ops" and got[0]["details"]["n"] == 1
    assert isinstance(got[0]["details"]["when"], str)
    assert got[1]["details"] == {}
    assert [c["seq"] for c in metadata.changes(since=1)] == [2]
    assert [a[1] for a in seen] == ["token.issue", "grant.add"]
    got[0]["details"]["n"] = 99  # a copy: the store is not changed through it
    assert metadata.changes()[0]["details"]["n"] == 1


def test_stored_grants(metadata: Any) -> None:
    spec = {"consumer": "c", "datasets": ["a.b"], "purposes": ["p"]}
    metadata.add_grant("g1", "o", spec, "cli:x")
    metadata.add_grant("g2", "o", {**spec, "consumer": "d"}, "member:o")
    with pytest.raises(ValueError):
        metadata.add_grant("g1", "o", spec, "cli:x")
    assert [g[0] for g in metadata.stored_grants()] == ["g1", "g2"]
    assert metadata.stored_grants()[0] == ("g1", "o", spec, "cli:x")
    assert metadata.revoke_grant("g1", "cli:x") is True
    assert metadata.revoke_grant("g1", "cli:x") is False
    assert metadata.revoke_grant("nope", "cli:x") is False
    assert [g[0] for g in metadata.stored_grants()] == ["g2"]


def test_dataset_status(metadata: Any) -> None:
    assert metadata.dataset_status("traffic.passages") is None
    metadata.record_dataset("traffic.passages", "traffic-police", "tp", True, "ok", "", {})
    metadata.record_dataset("traffic.passages", "traffic-police", "tp", True, "drift",
                            "column gone", {"a": "INTEGER"})
    assert metadata.dataset_status("traffic.passages") == ("drift", "column gone")


def test_the_columns_seen_outlive_the_check_that_lost_them(metadata: Any) -> None:
    assert metadata.dataset_seen("parks.trees") == set()
    metadata.record_dataset("parks.trees", "parks", "p", True, "ok", "",
                            {"tree_id": "BIGINT", "species": "VARCHAR"})
    metadata.record_dataset("parks.trees", "parks", "p", True, "drift", "species gone",
                            {"tree_id": "BIGINT"})
    assert metadata.dataset_seen("parks.trees") == {"tree_id", "species"}
    assert metadata.dataset_seen("parks.other") == set()


def test_metadata_is_thread_safe(metadata: Any) -> None:
    def issue(i: int) -> None:
        for j in range(20):
            metadata.add_token(f"t{i}-{j}", "m")
            metadata.record_change("a", "token.issue", "m")

    threads = [threading.Thread(target=issue, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert metadata.version() == 80
    assert sorted(c["seq"] for c in metadata.changes()) == list(range(1, 81))
    assert sum(metadata.token_member(f"t{i}-{j}") == "m" for i in range(4)
               for j in range(20)) == 80


# --- nonces, sessions, rate counters ------------------------------------------------------------

def test_nonces_once_within_their_time(nonces: Any) -> None:
    assert nonces.spend("k|n1", now=100.0, ttl_s=60) is True
    assert nonces.spend("k|n1", now=150.0, ttl_s=60) is False  # replay
    assert nonces.spend("k|n2", now=150.0, ttl_s=60) is True
    assert nonces.spend("k|n1", now=161.0, ttl_s=60) is True  # forgotten after its time


def test_sessions(sessions: Any) -> None:
    sessions.put(b"h1", "cockpit-city", "t1", 200.0, now=100.0)
    sessions.put(b"h2", "cockpit-xihu", "t2", 300.0, now=100.0)
    assert sessions.get(b"h1", now=100.0) == ("cockpit-city", "t1", 200.0)
    assert sessions.get(b"h1", now=200.0) is None  # expiry is exclusive
    assert sessions.get(b"nope", now=100.0) is None
    sessions.delete(b"h2")
    sessions.delete(b"h2")
    assert sessions.get(b"h2", now=100.0) is None
    sessions.put(b"h3", "cockpit-city", "t1", 900.0, now=250.0)  # drops h1, expired at 250
    assert sessions.get(b"h1", now=150.0) is None
    assert sessions.get(b"h3", now=250.0) == ("cockpit-city", "t1", 900.0)


def test_rate_counters_slide(rates: Any) -> None:
    assert [rates.hit("g", 3, 60, now=t) for t in (0.0, 10.0, 20.0)] == [None, None, None]
    retry = rates.hit("g", 3, 60, now=30.0)
    assert retry == pytest.approx(30.0)  # the hit at 0 leaves the window at 60
    assert rates.hit("other", 3, 60, now=30.0) is None  # counters are per key
    assert rates.hit("g", 3, 60, now=60.0) is None  # the hit at 0 has left
    assert rates.hit("g", 3, 60, now=61.0) is not None  # 10, 20, 60 remain


def test_rate_counters_refusals_are_not_counted(rates: Any) -> None:
    assert rates.hit("g", 1, 60, now=0.0) is None
    for t in range(1, 10):
        assert rates.hit("g", 1, 60, now=float(t)) is not None
    assert rates.hit("g", 1, 60, now=60.0) is None


lookups = _store_fixture(sqlite.SqliteLookupCounts, memory.MemoryLookupCounts,
                         postgres.PostgresLookupCounts)


def test_lookup_counts_count_distinct_values(lookups: Any) -> None:
    assert lookups.spend("c|p", ["a", "b"], 3, 100, now=0.0) is None
    assert lookups.spend("c|p", ["a", "a", "b"], 3, 100, now=1.0) is None  # nothing new
    assert lookups.count("c|p", 100, now=1.0) == 2
    assert lookups.spend("c|p", ["c", "d"], 3, 100, now=2.0) == 2  # 4 > 3: all refused
    assert lookups.count("c|p", 100, now=2.0) == 2  # …and nothing of it counted
    assert lookups.spend("c|p", ["c"], 3, 100, now=3.0) is None
    assert lookups.spend("c|p", ["d"], 3, 100, now=3.0) == 3
    assert lookups.spend("other|p", ["d"], 3, 100, now=3.0) is None  # per key
    assert lookups.spend("c|p", [], 3, 100, now=3.0) is None


def test_lookup_counts_slide_and_a_repeat_refreshes(lookups: Any) -> None:
    assert lookups.spend("k", ["a"], 2, 100, now=0.0) is None
    assert lookups.spend("k", ["b"], 2, 100, now=50.0) is None
    assert lookups.spend("k", ["a"], 2, 100, now=90.0) is None  # seen again: kept until 190
    assert lookups.spend("k", ["c"], 2, 100, now=120.0) == 2  # a (90) and b (50) remain
    assert lookups.spend("k", ["c"], 2, 100, now=150.0) is None  # b left at 150
    assert lookups.count("k", 100, now=150.0) == 2
    assert lookups.count("k", 100, now=240.0) == 1  # c, seen at 150 (a left at 190)
    assert lookups.spend("k", [f"v{i}" for i in range(1200)], 2000, 100, now=300.0) is None
    assert lookups.count("k", 100, now=300.0) == 1200
