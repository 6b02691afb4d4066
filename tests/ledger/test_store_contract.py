"""The ledger store contract: one suite, run on every implementation of ``LedgerStore``.

The PostgreSQL store runs it on a fresh database per test (marked ``server``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.stores.pg import fresh_database
from zhongshu.errors import LedgerInvalid
from zhongshu.ledger import merkle, note
from zhongshu.ledger.layout import TILE, tile_key
from zhongshu.ledger.memory import MemoryLedgerStore
from zhongshu.ledger.sequencer import Sequencer
from zhongshu.ledger.store import Batch, LedgerStore, SqliteLedgerStore, StoredCheckpoint
from zhongshu.ledger.verify import verify_store

ORIGIN = "contract.zhongshu/log"
Maker = Callable[[], LedgerStore]


@pytest.fixture(params=["sqlite", "memory", pytest.param("postgres", marks=pytest.mark.server)])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Maker]:
    """A factory of stores of one kind; stores it makes share their data (one file, one
    database)."""
    if request.param == "postgres":
        from zhongshu.ledger.postgres import PostgresLedgerStore

        made: list[PostgresLedgerStore] = []

        def pg() -> LedgerStore:
            made.append(PostgresLedgerStore(url))
            return made[-1]

        with fresh_database() as url:
            yield pg
            for s in made:
                s.close()
    elif request.param == "sqlite":
        yield lambda: SqliteLedgerStore(tmp_path / "ledger.db")
    else:
        shared = MemoryLedgerStore()
        yield lambda: shared


@pytest.fixture
def store(make: Maker) -> LedgerStore:
    return make()


def _body(i: int) -> bytes:
    return b'{"i":%d,"kind":"change"}' % i


def _append(store: LedgerStore, seq: Sequencer, lo: int, hi: int, time_ms: int = 1000,
            datasets: tuple[str, ...] = ("a.b",)) -> tuple[int, list[bytes]]:
    return seq.commit_bodies([(_body(i), list(datasets), time_ms) for i in range(lo, hi)])


def _tree(n: int) -> tuple[merkle.Frontier, dict[tuple[int, int], bytes]]:
    f, out = merkle.Frontier(), list[tuple[int, int, bytes]]()
    for i in range(n):
        f.append(merkle.leaf_hash(_body(i)), out)
    return f, {(level, idx): h for level, idx, h in out}


def test_an_empty_store(store: LedgerStore) -> None:
    assert store.size() == 0
    assert store.entry(0) is None and list(store.entries()) == []
    assert store.first_since(0) == 0 and store.reading("a.b") == []
    assert store.tile(0, 0) == b""
    with pytest.raises(LedgerInvalid):
        store.hash(0, 0)
    assert store.latest_checkpoint() is None and store.checkpoints() == []
    assert store.checkpoint_at(1) is None and store.checkpoint_covering(0) is None
    assert store.cosignatures(1) == [] and store.sent("w") == 0
    assert store.evidence() == []


def test_entries_and_hashes_in_batches_across_tiles(store: LedgerStore) -> None:
    seq = Sequencer(store, ORIGIN)
    n = 2 * TILE + 88  # two full tiles of leaves, one partial; a level-8 hash
    first, leaves = _append(store, seq, 0, 1)
    assert first == 0 and leaves == [merkle.leaf_hash(_body(0))]
    for lo, hi in ((1, 100), (100, 256), (256, 257), (257, n)):
        first, leaves = _append(store, seq, lo, hi)
        assert first == lo and len(leaves) == hi - lo
    assert store.size() == n
    assert store.entry(5) == _body(5) and store.entry(n) is None and store.entry(-1) is None
    assert [i for i, _ in store.entries()] == list(range(n))
    assert list(store.entries(10, 13)) == [(i, _body(i)) for i in range(10, 13)]
    assert list(store.entries(n - 2)) == [(n - 2, _body(n - 2)), (n - 1, _body(n - 1))]
    assert list(store.entries(0, 0)) == []
    f, nodes = _tree(n)
    for (level, idx), h in nodes.items():
        assert store.hash(level, idx) == h
    assert merkle.root(store.hash, n) == f.root()
    # tiles: full ones hold 256 hashes, the last what it has so far
    assert store.tile(0, 0) == b"".join(nodes[(0, i)] for i in range(TILE))
    assert store.tile(0, 2) == b"".join(nodes[(0, i)] for i in range(2 * TILE, n))
    assert store.tile(8, 0) == nodes[(8, 0)] + nodes[(8, 1)]
    assert store.tile(0, 3) == b""
    with pytest.raises(LedgerInvalid):
        store.hash(0, n)


def test_an_append_is_all_or_nothing(store: LedgerStore) -> None:
    seq = Sequencer(store, ORIGIN)
    _append(store, seq, 0, 10)
    with pytest.raises(RuntimeError), store.appending() as tx:
        assert tx.size == 10
        tx.write(Batch([(10, 1, _body(10))], [(0, 10, merkle.leaf_hash(_body(10)))],
                       [("a.b", 10)]))
        raise RuntimeError("the disk, say")
    assert store.size() == 10 and store.entry(10) is None and store.reading("a.b", 10) == []
    with pytest.raises(LedgerInvalid), store.appending() as tx:
        tx.write(Batch([(11, 1, _body(11))]))  # not the next index
    assert store.size() == 10
    # a failed batch that filled tiles leaves nothing behind, cached or stored
    f, out = _tree(10)[0], list[tuple[int, int, bytes]]()
    other = [b'{"other":%d}' % i for i in range(10, 300)]
    for body in other:
        f.append(merkle.leaf_hash(body), out)
    with pytest.raises(RuntimeError), store.appending() as tx:
        tx.write(Batch([(10 + i, 1, b) for i, b in enumerate(other)], out))
        raise RuntimeError
    # the store and the sequencer recover: the next batches land at 10
    assert _append(store, seq, 10, 20)[0] == 10
    assert _append(store, seq, 20, 2 * TILE + 1)[0] == 20
    _check(store, 2 * TILE + 1)


def _check(store: LedgerStore, n: int) -> None:
    """Every hash and every tile of the first ``n`` entries is the one recomputed."""
    f, nodes = _tree(n)
    assert all(store.hash(level, idx) == h for (level, idx), h in nodes.items())
    for level in (0, 8):
        for t in range(((n >> level) + TILE - 1) // TILE):
            want = [nodes[(level, i)] for i in range(t * TILE, min((t + 1) * TILE, n >> level))]
            assert store.tile(level, t) == b"".join(want), (level, t)
    assert merkle.root(store.hash, n) == f.root()


def test_two_writers_interleave(make: Maker) -> None:
    """Two sequencers (the hub's process and the CLI) on one store: each catches up."""
    a, b = Sequencer(make(), ORIGIN), Sequencer(make(), ORIGIN)
    lo = 0
    for i, k in enumerate((100, 1, 200, 55, 300, 7)):
        seq = a if i % 2 == 0 else b
        assert _append(seq.store, seq, lo, lo + k)[0] == lo
        lo += k
    store = make()
    assert store.size() == lo
    _check(store, lo)
    if isinstance(store, SqliteLedgerStore):  # full tiles are written whole, not left as rows
        c = sqlite3.connect(store.path)
        keys = {k for (k,) in c.execute("SELECT DISTINCT key FROM edge")}
        c.close()
        partial = {tile_key(level, (lo >> level) // TILE) for level in range(lo.bit_length())
                   if (lo >> level) % TILE}
        assert keys == partial


def test_concurrent_appends_from_threads(store: LedgerStore) -> None:
    seq, lock = Sequencer(store, ORIGIN), threading.Lock()
    got: list[int] = []

    def work() -> None:
        for _ in range(20):
            with lock:  # one sequencer is used by one thread at a time, as the ledger does
                first, _ = seq.commit_bodies([(b'{"x":1}', [], 1)] * 3)
            got.append(first)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(0, 240, 3)) and store.size() == 240


def test_reading_by_dataset_and_time(store: LedgerStore) -> None:
    seq = Sequencer(store, ORIGIN)
    _append(store, seq, 0, 3, time_ms=1000, datasets=("a.b",))
    _append(store, seq, 3, 5, time_ms=2000, datasets=("c.d", "a.b"))
    _append(store, seq, 5, 9, time_ms=2000, datasets=())
    _append(store, seq, 9, 10, time_ms=3000, datasets=("c.d",))
    assert store.reading("a.b") == [0, 1, 2, 3, 4]
    assert store.reading("a.b", 2) == [2, 3, 4] and store.reading("a.b", 5) == []
    assert store.reading("c.d") == [3, 4, 9] and store.reading("x.y") == []
    assert [store.first_since(t) for t in (0, 1000, 1001, 2000, 2500, 3000, 3001)] == \
        [0, 0, 3, 3, 9, 9, 10]


def test_checkpoints(store: LedgerStore) -> None:
    store.add_checkpoint(5, b"\x05" * 32, 100, "note 5")
    store.add_checkpoint(2, b"\x02" * 32, 50, "note 2")
    store.add_checkpoint(5, b"\xff" * 32, 200, "another 5")  # a second one of a size: ignored
    assert store.latest_checkpoint() == StoredCheckpoint(5, b"\x05" * 32, "note 5")
    assert [c.size for c in store.checkpoints()] == [2, 5]
    assert store.checkpoint_at(2) == (2, b"\x02" * 32, "note 2")
    assert store.checkpoint_at(3) is None
    assert [getattr(store.checkpoint_covering(i), "size", None) for i in (0, 1, 2, 4, 5)] == \
        [2, 2, 5, 5, None]
    size, root, text = store.checkpoints()[0]  # rows unpack as (size, root, note)
    assert (size, root, text) == (2, b"\x02" * 32, "note 2")


def test_cosignatures_and_sent_marks(store: LedgerStore) -> None:
    store.add_checkpoint(5, b"\x05" * 32, 100, "note 5")
    store.add_cosignature(5, "w2", "— w2 line\n")
    store.add_cosignature(5, "w1", "— w1 old\n")
    store.add_cosignature(5, "w1", "— w1 line\n")  # the witness's last replaces
    assert store.cosignatures(5) == ["— w1 line\n", "— w2 line\n"]
    assert store.cosignatures(4) == []
    store.set_sent("w1", 5)
    store.set_sent("w1", 7)
    assert store.sent("w1") == 7 and store.sent("w2") == 0


def test_witnessing_is_atomic(store: LedgerStore) -> None:
    with store.witnessing("peer/log") as w:
        assert w.seen is None
        w.keep(3, b"\x03" * 32, "ckpt 3")
    with store.witnessing("peer/log") as w:
        assert w.seen == (3, b"\x03" * 32, "ckpt 3")
        assert w.evidence("fork", 10, "first", "3 aa")  # kept with no new checkpoint
    with pytest.raises(RuntimeError), store.witnessing("peer/log") as w:
        w.keep(9, b"\x09" * 32, "ckpt 9")
        w.evidence("inconsistent", 11, "lost", "9 bb")
        raise RuntimeError
    with store.witnessing("other/log") as w:
        assert w.seen is None
        assert w.evidence("inconsistent", 12, "second", "3 aa")  # another origin's
    with store.witnessing("peer/log") as w:
        assert w.seen is not None and w.seen.size == 3
    assert store.evidence() == [
        {"origin": "other/log", "time_ms": 12, "kind": "inconsistent", "detail": "second",
         "offered": 1},
        {"origin": "peer/log", "time_ms": 10, "kind": "fork", "detail": "first", "offered": 1}]


def test_evidence_is_kept_once_per_fork(store: LedgerStore) -> None:
    for t in range(10):  # the same conflicting tree offered ten times, one step each
        with store.witnessing("peer/log") as w:
            assert w.evidence("fork", 100 + t, f"offer {t}", "7 cc") is (t == 0)
    with store.witnessing("peer/log") as w:  # twice in one step counts twice
        assert w.evidence("fork", 200, "x", "8 dd") and not w.evidence("fork", 201, "y", "8 dd")
    with pytest.raises(RuntimeError), store.witnessing("peer/log") as w:
        w.evidence("fork", 300, "rolled back", "7 cc")
        raise RuntimeError
    assert store.evidence() == [
        {"origin": "peer/log", "time_ms": 200, "kind": "fork", "detail": "x", "offered": 2},
        {"origin": "peer/log", "time_ms": 100, "kind": "fork", "detail": "offer 0",
         "offered": 10}]


def test_closed_store_keeps_everything(make: Maker) -> None:
    store = make()
    seq = Sequencer(store, ORIGIN)
    _append(store, seq, 0, 300)
    store.add_checkpoint(300, merkle.root(store.hash, 300), 1, "n")
    store.close()
    again = make()
    assert again.size() == 300 and again.latest_checkpoint() is not None
    assert merkle.root(again.hash, 300) == _tree(300)[0].root()


def test_a_store_verifies(store: LedgerStore, tmp_path: Path) -> None:
    """What verify reads of a store (entries, hashes, checkpoints) holds on every kind."""
    key = note.Signer.load_or_create(tmp_path / "k", ORIGIN, note.ED25519)
    seq = Sequencer(store, ORIGIN)
    for lo, hi in ((0, 70), (70, 300)):
        seq.commit([({"kind": "change", "n": i}, ["a.b"]) for i in range(lo, hi)])
        body = note.body(ORIGIN, hi, merkle.root(store.hash, hi))
        store.add_checkpoint(hi, merkle.root(store.hash, hi), 1,
                             body + "\n" + key.sign_note(body))
    report = verify_store(store, key.verifier)
    assert report.ok, report.problems
    assert (report.size, report.checkpoints) == (300, 2)


def test_a_reader_sees_what_another_writer_appends_later(make: Maker) -> None:
    """A store that read a tile while it filled (and may keep what it read) still serves
    every hash and tile once another store on the same data appended more."""
    writer, reader = make(), make()
    seq = Sequencer(writer, ORIGIN)
    _append(writer, seq, 0, 100)
    f, nodes = _tree(100)
    assert reader.tile(0, 0) == b"".join(nodes[(0, i)] for i in range(100))
    assert reader.hash(0, 99) == nodes[(0, 99)]
    with pytest.raises(LedgerInvalid):
        reader.hash(0, 100)
    _append(writer, seq, 100, 2 * TILE + 3)  # fills tile 0, starts a level-8 tile
    n = 2 * TILE + 3
    f, nodes = _tree(n)
    assert reader.hash(0, 100) == nodes[(0, 100)] and reader.hash(0, n - 1) == nodes[(0, n - 1)]
    assert reader.tile(0, 0) == b"".join(nodes[(0, i)] for i in range(TILE))
    assert reader.tile(0, 2) == b"".join(nodes[(0, i)] for i in range(2 * TILE, n))
    assert reader.tile(8, 0) == nodes[(8, 0)] + nodes[(8, 1)]
    assert merkle.root(reader.hash, n) == f.root()
