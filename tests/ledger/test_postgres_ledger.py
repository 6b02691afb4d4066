"""One log in PostgreSQL, many writers: the sequencer's lease moves to the next process
within seconds of its holder's SIGKILL, and whatever the writers and their deaths, no index
is handed out twice and the tree is the one recomputed from the entries alone."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.stores.pg import fresh_database
from zhongshu.ledger import merkle
from zhongshu.ledger.lease import Lease
from zhongshu.ledger.postgres import PostgresLedgerStore
from zhongshu.ledger.sequencer import Sequencer

pytestmark = pytest.mark.server
ROOT = Path(__file__).resolve().parents[2]

WRITER = """
import sys, time
from zhongshu.ledger.lease import Lease
from zhongshu.ledger.postgres import PostgresLedgerStore
from zhongshu.ledger.sequencer import Sequencer
url, name, batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
lease = Lease(url)
lease.take()
print("held", repr(time.time()), flush=True)
seq = Sequencer(PostgresLedgerStore(url), "test/log")
i = 0
while batches < 0 or i < batches:
    seq.commit_bodies([(b'{"by":"%s","i":%d,"j":%d}' % (name.encode(), i, j), ["a.b"], 1)
                       for j in range(7)])
    i += 1
print("done", flush=True)
"""


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962's Merkle tree hash, written out with hashlib alone (the oracle)."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


def _whole(store: PostgresLedgerStore) -> list[bytes]:
    """The log's bodies, once shown numbered 0…n-1 without a gap or a repeat, and its
    stored tree shown equal to the one recomputed from them."""
    got = list(store.entries())
    assert [i for i, _ in got] == list(range(len(got))) == list(range(store.size()))
    bodies = [b for _, b in got]
    assert len(set(bodies)) == len(bodies)  # no entry written twice under two indices
    leaves = [hashlib.sha256(b"\x00" + b).digest() for b in bodies]
    assert merkle.root(store.hash, len(bodies)) == _mth(leaves)
    return bodies


def _stored_tiles_are_the_tree(url: str, leaves: list[bytes]) -> None:
    """Every complete-subtree hash the database keeps, level by level, is the one computed
    from the leaves with hashlib alone: each full tile whole in ``ledger_tiles`` (and no
    longer in ``ledger_edge``), each tile still filling in ``ledger_edge``, in order."""
    import psycopg

    with psycopg.connect(url) as con:
        tiles = {int(k): bytes(h) for k, h in con.execute("SELECT key, hashes FROM ledger_tiles")}
        edge: dict[int, list[tuple[int, bytes]]] = {}
        for k, pos, h in con.execute("SELECT key, pos, hash FROM ledger_edge ORDER BY 1, 2"):
            edge.setdefault(int(k), []).append((int(pos), bytes(h)))
    level, hashes, seen = 0, list(leaves), set()
    while hashes:
        for t in range(0, len(hashes), 256):
            chunk, key = hashes[t:t + 256], level << 48 | t // 256
            seen.add(key)
            if len(chunk) == 256:
                assert tiles.get(key) == b"".join(chunk) and key not in edge, (level, t)
            else:
                assert key not in tiles, (level, t)
                assert edge.get(key) == list(enumerate(chunk)), (level, t)
        hashes = [hashlib.sha256(b"\x01" + hashes[i] + hashes[i + 1]).digest()
                  for i in range(0, len(hashes) - 1, 2)]
        level += 1
    assert set(tiles) | set(edge) <= seen  # nothing else is kept


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_database() as u:
        yield u


def test_the_lease_is_held_by_one_and_passed_on_release(url: str) -> None:
    a, b = Lease(url), Lease(url)
    try:
        assert a.try_take() and a.held()
        assert not b.try_take() and not b.held()
        assert b.holder() is not None and b.holder() == a.holder()
        a.release()
        assert not a.held()
        assert b.take(timeout_s=2) and b.held()
        assert not a.take(timeout_s=0.3)
    finally:
        a.release()
        b.release()


def test_writers_in_many_connections_never_share_an_index(url: str,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """Three writers interleaving batches of 1–7 entries past the first tiles' ends (256
    and 512 leaves): each follows the others' entries; the tree stored is the one
    recomputed from the entries alone, at every size."""
    stores = [PostgresLedgerStore(url) for _ in range(3)]
    firsts: list[tuple[int, int]] = []
    followed = []
    catch_up = Sequencer._catch_up

    def counted(self: Sequencer, f: Any, tx: Any) -> Any:
        g = catch_up(self, f, tx)
        followed.append(g is not None)
        return g

    monkeypatch.setattr(Sequencer, "_catch_up", counted)

    def write(k: int) -> None:
        seq = Sequencer(stores[k], "test/log")
        for i in range(60):
            first, leaves = seq.commit_bodies(
                [(b'{"w":%d,"i":%d,"j":%d}' % (k, i, j), [], 1) for j in range(1 + (i + k) % 7)])
            firsts.append((first, len(leaves)))

    threads = [threading.Thread(target=write, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        spans = sorted(firsts)
        assert all(a + n == b for (a, n), (b, _) in zip(spans, spans[1:], strict=False))
        assert sum(followed) > 20  # the writers did follow each other's entries
        fresh = PostgresLedgerStore(url)  # what the database holds, no writer's cache
        try:
            bodies = _whole(fresh)
            assert len(bodies) == sum(n for _, n in spans) > 512
            leaves = [hashlib.sha256(b"\x00" + b).digest() for b in bodies]
            for n in range(1, len(bodies) + 1, 23):
                assert merkle.root(fresh.hash, n) == _mth(leaves[:n]), n
            _stored_tiles_are_the_tree(url, leaves)
        finally:
            fresh.close()
    finally:
        for s in stores:
            s.close()


def test_an_append_returns_only_once_its_batch_is_flushed_to_disk(
        url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """When an append returns, the server's write-ahead log is flushed past the batch (its
    commit record comes after everything the batch wrote): a receipt is never given for an
    entry a crash of the server could lose."""
    import psycopg

    from zhongshu.ledger import postgres

    seen: list[str] = []
    write = postgres._PostgresAppend.write

    def watched(self: Any, batch: Any) -> None:  # the batch written, not yet committed
        write(self, batch)
        seen.append(self._con.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0])

    monkeypatch.setattr(postgres._PostgresAppend, "write", watched)
    store = PostgresLedgerStore(url)
    try:
        seq = Sequencer(store, "test/log")
        with psycopg.connect(url, autocommit=True) as con:
            for i in range(20):
                seq.commit_bodies([(b'{"i":%d}' % i, [], 1)])
                assert con.execute("SELECT pg_current_wal_flush_lsn() >= %s",
                                   (seen[-1],)).fetchone()[0], i
        assert len(seen) == 20
    finally:
        store.close()


def test_a_killed_holder_hands_the_lease_on_within_5_s(url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def writer(name: str, batches: int) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-c", WRITER, url, name, str(batches)],
                                stdout=subprocess.PIPE, text=True, env=env)

    first = writer("first", -1)
    second = None
    store = PostgresLedgerStore(url)
    try:
        assert first.stdout is not None and first.stdout.readline().startswith("held")
        second = writer("second", 20)  # waits for the lease
        deadline = time.monotonic() + 30
        while store.size() < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.size() >= 300, "the first writer did not append"
        probe = Lease(url)
        assert not probe.try_take()  # held by the first writer
        probe.release()
        killed_at = time.time()
        first.send_signal(signal.SIGKILL)  # in the middle of appending, most likely
        assert second.stdout is not None
        line = second.stdout.readline().split()
        assert line[0] == "held"
        moved = float(line[1]) - killed_at
        print(f"lease moved {moved:.2f} s after the SIGKILL")
        assert moved < 5
        assert second.wait(60) == 0 and second.stdout.readline().strip() == "done"
        bodies = _whole(store)
        assert sum(b'"by":"second"' in b for b in bodies) == 20 * 7
        assert bodies[-1].startswith(b'{"by":"second"')  # after the first's last entry
        assert store.reading("a.b") == list(range(len(bodies)))
    finally:
        for p in (first, second):
            if p is not None:
                if p.poll() is None:
                    p.kill()
                p.wait()
                if p.stdout is not None:
                    p.stdout.close()
        store.close()
