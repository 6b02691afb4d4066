"""The ledger file: appends, checkpoints, and every kind of tampering caught by `verify`."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import pytest

from zhongshu.errors import LedgerUnavailable
from zhongshu.ledger import Ledger, note
from zhongshu.ledger import entry as entries
from zhongshu.ledger.memory import MemoryLedgerStore
from zhongshu.ledger.store import LedgerStore, SqliteLedgerStore
from zhongshu.ledger.verify import verify_store

N = 600  # more than two full tiles, so level-8 hashes exist


def _open(path: Path, kind: str = "sqlite") -> Ledger:
    store: LedgerStore = (SqliteLedgerStore(path / "ledger.db") if kind == "sqlite"
                          else MemoryLedgerStore())
    return Ledger(store, "test.zhongshu/log",
                  note.Signer.load_or_create(path / "ledger.key", "test.zhongshu/log",
                                             note.ED25519))


# the ledger runs on any store: on the in-memory one it appends in-process (no sequencer
# process, which opens the SQLite file), through the same record_async / append_now
STORES = pytest.mark.parametrize("kind", ["sqlite", "memory"])


def _exchange(i: int) -> dict[str, object]:
    return entries.exchange(f"member-{i % 7}", "testing", f"{i:064x}",
                            {"traffic.passages": ["camera_id"]}, ["g1"], "ab" * 32, "json",
                            i, False)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log written the hub's way: the sequencer process, concurrent appends."""
    path = tmp_path_factory.mktemp("ledger")
    lg = _open(path)
    lg.start()

    async def write() -> None:
        for lo, hi in ((0, 100), (100, 301), (301, 512), (512, N)):
            await asyncio.gather(*(lg.record_async(_exchange(i), ["traffic.passages"])
                                   for i in range(lo, hi)))
            if hi < N:
                lg.record(entries.change("cli:root", "grant.add", {"subject": "g1"}))
                lg.publish()

    asyncio.run(write())
    lg.close()
    return path


def _copy(built: Path, tmp_path: Path) -> tuple[SqliteLedgerStore, note.Verifier]:
    src, dst = sqlite3.connect(built / "ledger.db"), sqlite3.connect(tmp_path / "ledger.db")
    src.backup(dst)
    src.close()
    dst.close()
    key = note.Signer.load_or_create(built / "ledger.key", "test.zhongshu/log", note.ED25519)
    return SqliteLedgerStore(tmp_path / "ledger.db"), key.verifier


def test_a_clean_log_verifies(built: Path, tmp_path: Path) -> None:
    store, key = _copy(built, tmp_path)
    report = verify_store(store, key)
    assert report.ok, report.problems
    assert report.size == N + 3 and report.checkpoints == 4


def _sql(store: SqliteLedgerStore, sql: str, *args: object) -> None:
    c = sqlite3.connect(store.path)
    c.execute(sql, args)
    c.commit()
    c.close()


def _flip(blob: bytes, at: int) -> bytes:
    b = bytearray(blob)
    b[at % len(b)] ^= 0x01
    return bytes(b)


def _flip_hash(store: SqliteLedgerStore, level: int, idx: int) -> None:
    """Flip a bit of one stored subtree hash, in a full tile or among the edge's rows."""
    key = level << 48 | idx // 256
    c = sqlite3.connect(store.path)
    row = c.execute("SELECT hashes FROM tiles WHERE key = ?", (key,)).fetchone()
    if row is not None:
        c.execute("UPDATE tiles SET hashes = ? WHERE key = ?",
                  (_flip(row[0], (idx % 256) * 32 + 3), key))
    else:
        (h,) = c.execute("SELECT hash FROM edge WHERE key = ? AND pos = ?",
                         (key, idx % 256)).fetchone()
        c.execute("UPDATE edge SET hash = ? WHERE key = ? AND pos = ?",
                  (_flip(h, 3), key, idx % 256))
    c.commit()
    c.close()


TAMPERS = ["flip_entry", "flip_entry_json", "flip_leaf_hash", "flip_node_hash",
           "flip_edge_hash", "delete_entry",
           "reorder_entries", "truncate", "truncate_everything", "resign_other_key",
           "rewrite_and_rehash"]


@pytest.mark.parametrize("how", TAMPERS)
def test_every_tampering_is_caught(built: Path, tmp_path: Path, how: str) -> None:
    store, key = _copy(built, tmp_path)
    size = store.size()
    if how == "flip_entry":  # one byte of an entry's hex hash: still canonical JSON
        body = store.entry(123)
        assert body is not None
        at = body.index(b'"query_sha256":"') + 20
        _sql(store, "UPDATE entries SET body = ? WHERE idx = 123",
             body[:at] + (b"1" if body[at:at + 1] != b"1" else b"2") + body[at + 1:])
    elif how == "flip_entry_json":
        _sql(store, "UPDATE entries SET body = ? WHERE idx = 7", _flip(store.entry(7), 3))
    elif how == "flip_leaf_hash":
        _flip_hash(store, 0, 300)
    elif how == "flip_node_hash":
        _flip_hash(store, 8, 1)
    elif how == "flip_edge_hash":
        _flip_hash(store, 0, 590)
    elif how == "delete_entry":
        _sql(store, "DELETE FROM entries WHERE idx = 200")
    elif how == "reorder_entries":
        a, b = store.entry(10), store.entry(11)
        _sql(store, "UPDATE entries SET body = ? WHERE idx = 10", b)
        _sql(store, "UPDATE entries SET body = ? WHERE idx = 11", a)
    elif how == "truncate":
        _sql(store, "DELETE FROM entries WHERE idx >= ?", size - 50)
    elif how == "truncate_everything":  # entries and the checkpoints that knew them
        _sql(store, "DELETE FROM entries WHERE idx >= 400")
        _sql(store, "DELETE FROM checkpoints WHERE size > 400")
    elif how in ("resign_other_key", "rewrite_and_rehash"):
        if how == "rewrite_and_rehash":
            _sql(store, "DELETE FROM entries WHERE idx >= 302")
        other = note.Signer.load_or_create(tmp_path / "evil.key", "test.zhongshu/log",
                                           note.ED25519)
        for s, _root, text in store.checkpoints():
            c = note.parse_checkpoint(text)
            _sql(store, "UPDATE checkpoints SET note = ? WHERE size = ?",
                 c.body + "\n" + other.sign_note(c.body), s)
    known = []
    if how == "truncate_everything":  # a witness (or an earlier receipt) kept checkpoint N
        known = [note.parse_checkpoint(t) for s, _, t in
                 SqliteLedgerStore(built / "ledger.db").checkpoints()][-1:]
    report = verify_store(SqliteLedgerStore(store.path), key, known)
    assert not report.ok, how
    print(how, report.problems[:2])


def test_a_fork_is_caught(built: Path, tmp_path: Path) -> None:
    """Two checkpoints of one size with different roots, both signed by the log key."""
    store, key = _copy(built, tmp_path)
    signer = note.Signer.load_or_create(built / "ledger.key", "test.zhongshu/log",
                                        note.ED25519)
    size, root, _ = store.checkpoints()[1]
    forged_body = note.body("test.zhongshu/log", size, bytes(32))
    forged = note.parse_checkpoint(forged_body + "\n" + signer.sign_note(forged_body))
    report = verify_store(store, key, [forged])
    assert not report.ok
    assert any("fork" in p or "differs" in p for p in report.problems)


def test_the_hub_refuses_to_sign_over_a_rewritten_log(built: Path, tmp_path: Path) -> None:
    store, _ = _copy(built, tmp_path)
    shutil.copy(built / "ledger.key", tmp_path / "ledger.key")
    body = store.entry(5)
    assert body is not None
    # rewrite history: the stored hash of the first 512 entries, as an edit would leave it
    # (the hub re-derives each signed root from the stored subtrees before signing anew;
    # `ledger verify` recomputes everything from the entries)
    _flip_hash(store, 9, 0)
    lg = _open(tmp_path)  # opened after the edit: nothing of the file cached
    lg.append_now(entries.change("cli:root", "member.add", {"subject": "x"}))
    with pytest.raises(ValueError, match="refusing to sign"):
        lg.publish()


@STORES
def test_concurrent_appends_get_distinct_contiguous_indices(tmp_path: Path, kind: str) -> None:
    lg = _open(tmp_path, kind)
    lg.start()

    async def many() -> list[int]:
        receipts = await asyncio.gather(*(lg.record_async(_exchange(i), ["a.b"])
                                          for i in range(2000)))
        return [r.index for r in receipts]

    try:
        got = asyncio.run(many())
        assert sorted(got) == list(range(2000))
        if kind == "sqlite":
            assert lg.batches < 2000  # batched, not one transaction per entry
    finally:
        lg.close()
    last = lg.checkpoint()
    assert last is not None and last.size == 2000  # close signed a last checkpoint
    stored = SqliteLedgerStore(tmp_path / "ledger.db") if kind == "sqlite" else lg.store
    assert verify_store(stored, lg.log_key.verifier).ok


def test_a_dead_sequencer_is_replaced(tmp_path: Path) -> None:
    lg = _open(tmp_path)
    lg.start()

    async def run() -> None:
        await lg.record_async(_exchange(0))
        proc = lg.appender.process
        assert proc is not None
        proc.kill()
        proc.join(5)
        # entries in flight when it dies fail (LedgerUnavailable); later ones start a new one
        rs = await asyncio.gather(*(lg.record_async(_exchange(i)) for i in range(1, 50)),
                                  return_exceptions=True)
        assert all(isinstance(r, LedgerUnavailable) or r.index >= 1 for r in rs)
        r = await lg.record_async(_exchange(99))
        assert r.index == 1 + sum(1 for x in rs if not isinstance(x, Exception))

    try:
        asyncio.run(run())
    finally:
        lg.close()
    assert verify_store(SqliteLedgerStore(tmp_path / "ledger.db"), lg.log_key.verifier).ok


def test_entries_are_canonical_and_hold_no_sql(built: Path) -> None:
    store = SqliteLedgerStore(built / "ledger.db")
    for _, body in store.entries(0, 50):
        assert b"SELECT" not in body.upper()
        assert b'"time":"' in body and b'"log":"test.zhongshu/log"' in body


def test_a_file_of_another_format_is_refused_with_a_reason(tmp_path: Path) -> None:
    c = sqlite3.connect(tmp_path / "old.db")
    c.execute("CREATE TABLE entries (idx INTEGER PRIMARY KEY, body BLOB)")
    c.commit()
    c.close()
    with pytest.raises(ValueError, match="format 0"):
        SqliteLedgerStore(tmp_path / "old.db")


@STORES
def test_an_unserialisable_entry_fails_alone(tmp_path: Path, kind: str) -> None:
    lg = _open(tmp_path, kind)
    lg.start()

    async def run() -> list[object]:
        return await asyncio.gather(lg.record_async(_exchange(0)),
                                    lg.record_async({"kind": "bad", "x": {1, 2}}),
                                    lg.record_async(_exchange(1)), return_exceptions=True)

    try:
        a, bad, b = asyncio.run(run())
    finally:
        lg.close()
    assert isinstance(bad, LedgerUnavailable)
    assert {a.index, b.index} == {0, 1}  # type: ignore[union-attr]


def test_the_reads_the_endpoints_use(tmp_path: Path) -> None:
    """What protocol/ledger_routes reads, through the ledger (never its store)."""
    lg = _open(tmp_path, "memory")
    for i in range(3):
        lg.append_now(_exchange(i), ["traffic.passages"] if i != 1 else ["other.set"])
    assert lg.checkpoint_covering(0) is None  # nothing signed yet
    c = lg.publish()
    assert c is not None and c.size == 3
    lg.append_now(_exchange(3))
    assert [x.size for x in lg.checkpoints()] == [3]
    covering = lg.checkpoint_covering(2)
    assert covering is not None and covering.text == c.text
    assert lg.checkpoint_covering(3) is None
    assert lg.entry(-1) is None and lg.entry(4) is None
    assert lg.entry(0) == lg.store.entry(0)
    assert lg.reading("traffic.passages") == [0, 2] and lg.reading("traffic.passages", 1) == [2]
    assert lg.first_since(0) == 0 and len(lg.tile(0, 0)) == 4 * 32
    assert lg.evidence() == [] and lg.witness({}) is None  # no witness key
    lg.close()
