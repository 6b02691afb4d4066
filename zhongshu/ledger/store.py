"""Where a ledger is kept: the :class:`LedgerStore` interface and its SQLite file.

A store keeps entries, complete-subtree hashes (in the tiles of :mod:`layout`), the per-dataset
usage index, checkpoints, cosignatures, what each witness has cosigned, and — when this hub
witnesses other logs — what it cosigned for them and the evidence of logs that misbehaved.
It computes nothing: hashing, the tree and signatures belong to the sequencer and the
publisher, so a second store (:class:`~zhongshu.ledger.memory.MemoryLedgerStore`, or
PostgreSQL) is one more class, checked by the same contract suite
(``tests/ledger/test_store_contract.py``).

In the SQLite file, full tiles are rows of ``tiles`` (key ``level << 48 | n``, 256 hashes back
to back); the hashes of tiles not yet full are single rows of ``edge``, so a small batch
writes a few small rows, not whole tiles. One writer at a time (``BEGIN IMMEDIATE``), so
another process (the CLI recording a governance change while the hub runs) appends safely;
readers never block (WAL). Commits are fsynced (``synchronous=FULL``): an entry is durable
once its batch commits.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import NamedTuple, Protocol

from zhongshu.errors import LedgerInvalid
from zhongshu.ledger.layout import FULL, HASH, TILE, key_of, offset, position, tile_key

__all__ = ["FULL", "HASH", "TILE", "Appending", "Batch", "LedgerStore", "SqliteLedgerStore",
           "StoredCheckpoint", "Witnessed", "Witnessing"]


class StoredCheckpoint(NamedTuple):
    """A checkpoint as signed and kept: its size, root hash and note text (without the
    cosignatures, kept apart)."""

    size: int
    root: bytes
    note: str


class Witnessed(NamedTuple):
    """The checkpoint of another hub's log this hub cosigned last."""

    size: int
    root: bytes
    note: str


@dataclass
class Batch:
    """What one append transaction adds: entries ``(index, time_ms, canonical bytes)`` from
    the log's size on, the complete-subtree hashes ``(level, index, hash)`` they complete (in
    order), and the usage index ``(dataset, index)``."""

    entries: list[tuple[int, int, bytes]] = field(default_factory=list)
    hashes: list[tuple[int, int, bytes]] = field(default_factory=list)
    datasets: list[tuple[str, int]] = field(default_factory=list)

    def check_follows(self, size: int) -> None:
        """Raises ``LedgerInvalid`` unless the entries are numbered ``size, size + 1, …``
        (every store checks a batch this one way before it writes it)."""
        first = self.entries[0][0]
        if first != size or any(e[0] != first + i for i, e in enumerate(self.entries)):
            raise LedgerInvalid(f"a batch from index {first} cannot follow a log of "
                                f"{size} entries")


class Appending(Protocol):
    """One append transaction, holding the store's write lock."""

    @property
    def size(self) -> int:
        """Entries in the log when the lock was taken (the next entry's index)."""
        ...

    def write(self, batch: Batch) -> None:
        """Add ``batch``, committed (durably) when the transaction ends without an error.

        Raises:
            LedgerInvalid: its first entry's index is not :attr:`size`.
        """
        ...


class Witnessing(Protocol):
    """One witness step for one origin: read and update atomically (c2sp.org/tlog-witness)."""

    @property
    def seen(self) -> Witnessed | None:
        """The checkpoint of this origin cosigned last, or None."""
        ...

    def keep(self, size: int, root: bytes, note: str) -> None:
        """Remember the checkpoint now cosigned."""
        ...

    def evidence(self, kind: str, time_ms: int, detail: str, fork: str) -> bool:
        """Keep evidence that this origin's log misbehaved (``fork``, ``inconsistent``),
        once per ``fork`` (what identifies the conflicting checkpoint, e.g. its size and
        root): a fork offered again only counts one more offer. True when it is new."""
        ...


class LedgerStore(Protocol):
    """What the ledger keeps, and nothing it computes. Every method is safe to call from
    any thread; appends are ordered by :meth:`appending`'s lock."""

    # --- the log ----------------------------------------------------------------------------

    def appending(self) -> AbstractContextManager[Appending]:
        """One append transaction (one writer at a time, across processes where the store is
        shared); everything written is durable once it ends, nothing if it raises."""
        ...

    def size(self) -> int:
        """Number of entries."""
        ...

    def hash(self, level: int, idx: int) -> bytes:
        """A stored complete-subtree hash.

        Raises:
            LedgerInvalid: it is missing (the store was damaged).
        """
        ...

    def tile(self, level: int, n: int) -> bytes:
        """The stored hashes of level ``level``, ``256n`` onwards (up to 256, back to back)."""
        ...

    def entry(self, idx: int) -> bytes | None:
        """An entry's canonical bytes, or None."""
        ...

    def entries(self, lo: int = 0, hi: int | None = None) -> Iterator[tuple[int, bytes]]:
        """``(index, bytes)`` of entries ``[lo, hi)`` in order."""
        ...

    def first_since(self, time_ms: int) -> int:
        """The first index recorded at or after ``time_ms`` (entry times never decrease)."""
        ...

    def reading(self, dataset: str, since: int = 0) -> list[int]:
        """Indices of entries naming ``dataset``, from ``since``, in order."""
        ...

    # --- checkpoints and witnesses of this log ----------------------------------------------

    def add_checkpoint(self, size: int, root: bytes, time_ms: int, note: str) -> None:
        """Keep a signed checkpoint (a second one of the same size is ignored)."""
        ...

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The newest checkpoint signed."""
        ...

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        """The checkpoint of ``size``, if one was signed."""
        ...

    def checkpoint_covering(self, idx: int) -> StoredCheckpoint | None:
        """The smallest checkpoint that includes entry ``idx``."""
        ...

    def checkpoints(self) -> list[StoredCheckpoint]:
        """Every checkpoint signed, oldest first."""
        ...

    def cosignatures(self, size: int) -> list[str]:
        """Cosignature lines collected for the checkpoint of ``size``, by witness name."""
        ...

    def add_cosignature(self, size: int, witness: str, line: str) -> None:
        """Keep a witness's cosignature of the checkpoint of ``size`` (replacing its last)."""
        ...

    def sent(self, witness: str) -> int:
        """The size this log last had cosigned by ``witness`` (0 if never)."""
        ...

    def set_sent(self, witness: str, size: int) -> None:
        """Remember the size ``witness`` has cosigned."""
        ...

    # --- other hubs' logs, as their witness -------------------------------------------------

    def witnessing(self, origin: str) -> AbstractContextManager[Witnessing]:
        """One atomic witness step for ``origin`` (kept, evidence included, when it ends
        without an error)."""
        ...

    def evidence(self) -> list[dict[str, object]]:
        """Evidence of misbehaving logs (``origin``, ``time_ms`` when first offered, ``kind``,
        ``detail``, ``offered``: how many times), one per fork, newest first."""
        ...

    def close(self) -> None:
        """Leave the store complete on its own (e.g. a copied file holds everything)."""
        ...


# --- SQLite ----------------------------------------------------------------------------------

FORMAT = 1  # PRAGMA user_version of the file layout below

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL,
                                    body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tiles (key INTEGER PRIMARY KEY, hashes BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS edge (key INTEGER NOT NULL, pos INTEGER NOT NULL,
                                 hash BLOB NOT NULL, PRIMARY KEY (key, pos)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entry_datasets (dataset TEXT NOT NULL, idx INTEGER NOT NULL,
                                           PRIMARY KEY (dataset, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (size INTEGER PRIMARY KEY, root BLOB NOT NULL,
                                        time_ms INTEGER NOT NULL, note TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cosignatures (size INTEGER NOT NULL, witness TEXT NOT NULL,
                                         line TEXT NOT NULL, PRIMARY KEY (size, witness));
CREATE TABLE IF NOT EXISTS witness_sent (witness TEXT PRIMARY KEY, size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS witnessed (origin TEXT PRIMARY KEY, size INTEGER NOT NULL,
                                      root BLOB NOT NULL, note TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evidence (id INTEGER PRIMARY KEY, origin TEXT NOT NULL,
                                     time_ms INTEGER NOT NULL, kind TEXT NOT NULL,
                                     detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evidence_forks (origin TEXT NOT NULL, fork TEXT NOT NULL,
                                           evidence INTEGER NOT NULL, offered INTEGER NOT NULL,
                                           PRIMARY KEY (origin, fork)) WITHOUT ROWID;
"""

_MAX_PARAMS = 30_000  # below SQLite's 32,766 bound variables per statement


def _insert_rows(c: sqlite3.Connection, table: str, width: int, flat: list[object]) -> None:
    """Insert rows given flat (``width`` values each) with one multi-row statement per
    30,000 values: one SQLite call instead of one per row."""
    step = _MAX_PARAMS // width * width
    for lo in range(0, len(flat), step):
        chunk = flat[lo:lo + step]
        one = "(" + ",".join("?" * width) + ")"
        c.execute(f"INSERT INTO {table} VALUES " + ",".join([one] * (len(chunk) // width)),
                  chunk)


def _checkpoint(row: tuple[int, bytes, str] | None) -> StoredCheckpoint | None:
    return None if row is None else StoredCheckpoint(row[0], bytes(row[1]), row[2])


class _SqliteAppend:
    def __init__(self, store: SqliteLedgerStore, c: sqlite3.Connection, size: int) -> None:
        self._store, self._c, self._size = store, c, size
        self.written = 0

    @property
    def size(self) -> int:
        return self._size

    def write(self, batch: Batch) -> None:
        if not batch.entries:
            return
        batch.check_follows(self._size + self.written)
        _insert_rows(self._c, "entries", 3, list(chain.from_iterable(batch.entries)))
        self._store._put_hashes(self._c, batch.hashes)
        _insert_rows(self._c, "entry_datasets", 2, list(chain.from_iterable(batch.datasets)))
        self.written += len(batch.entries)


class _SqliteWitness:
    def __init__(self, c: sqlite3.Connection, origin: str, seen: Witnessed | None) -> None:
        self._c, self._origin, self._seen = c, origin, seen

    @property
    def seen(self) -> Witnessed | None:
        return self._seen

    def keep(self, size: int, root: bytes, note: str) -> None:
        self._c.execute("INSERT OR REPLACE INTO witnessed VALUES (?, ?, ?, ?)",
                        (self._origin, size, root, note))

    def evidence(self, kind: str, time_ms: int, detail: str, fork: str) -> bool:
        if self._c.execute("UPDATE evidence_forks SET offered = offered + 1 "
                           "WHERE origin = ? AND fork = ?", (self._origin, fork)).rowcount:
            return False
        cur = self._c.execute("INSERT INTO evidence (origin, time_ms, kind, detail) "
                              "VALUES (?, ?, ?, ?)", (self._origin, time_ms, kind, detail))
        self._c.execute("INSERT INTO evidence_forks VALUES (?, ?, ?, 1)",
                        (self._origin, fork, cur.lastrowid))
        return True


class SqliteLedgerStore:
    """A ledger in one SQLite file; each thread gets its own connection.

    Raises:
        LedgerInvalid: (on opening) the file is a ledger of another format.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._full: OrderedDict[int, bytes] = OrderedDict()  # full tiles never change
        self._full_lock = threading.Lock()
        self._edge: dict[int, bytes] = {}  # the writer's partial tiles, by key…
        self._edge_size: int | None = None  # …as of a log of this size
        path.parent.mkdir(parents=True, exist_ok=True)
        c = self._conn()
        version = c.execute("PRAGMA user_version").fetchone()[0]
        fresh = c.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
        if not fresh and version != FORMAT:
            raise LedgerInvalid(f"{path} is a ledger of format {version}, this hub writes "
                                f"format {FORMAT}; keep it aside (it still verifies with the "
                                "version that wrote it) and start a new one")
        c.executescript(SCHEMA)
        c.execute(f"PRAGMA user_version = {FORMAT}")

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection."""
        c: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.path, isolation_level=None, timeout=30,
                                check_same_thread=False)
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=FULL")
            self._local.conn = c
        return c

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the file's write lock from the start."""
        c = self._conn()
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    # --- the log ----------------------------------------------------------------------------

    @contextmanager
    def appending(self) -> Iterator[Appending]:
        try:
            with self._write() as c:
                size = self._size(c)
                if size != self._edge_size:  # another process appended: its partial tiles
                    self._edge.clear()
                tx = _SqliteAppend(self, c, size)
                yield tx
            self._edge_size = size + tx.written
        except BaseException:
            # what _put_hashes cached was not committed
            self._edge.clear()
            self._edge_size = None
            raise

    def _size(self, c: sqlite3.Connection) -> int:
        row = c.execute("SELECT max(idx) FROM entries").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def size(self) -> int:
        return self._size(self._conn())

    def _written(self, key: int) -> bytes | None:
        """A tile written whole (kept in memory once read: it never changes), or None while
        it fills up."""
        with self._full_lock:
            blob = self._full.get(key)
            if blob is not None:
                self._full.move_to_end(key)
                return blob
        row = self._conn().execute("SELECT hashes FROM tiles WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        blob = bytes(row[0])
        if len(blob) == FULL:
            with self._full_lock:
                self._full[key] = blob
                if len(self._full) > 4096:
                    self._full.popitem(last=False)
        return blob

    def hash(self, level: int, idx: int) -> bytes:
        key = key_of(level, idx)
        blob = self._written(key)
        if blob is None:  # its tile is still filling: one row of the edge
            row = self._conn().execute("SELECT hash FROM edge WHERE key = ? AND pos = ?",
                                       (key, position(idx))).fetchone()
            h = b"" if row is None else bytes(row[0])
        else:
            at = offset(idx)
            h = blob[at:at + HASH]
        if len(h) != HASH:
            raise LedgerInvalid(f"the ledger file lacks the hash of subtree {level}/{idx}")
        return h

    def tile(self, level: int, n: int) -> bytes:
        key = tile_key(level, n)
        blob = self._written(key)
        if blob is not None:
            return blob
        return b"".join(r[0] for r in self._conn().execute(  # not full yet: its hashes so far
            "SELECT hash FROM edge WHERE key = ? ORDER BY pos", (key,)))

    def _put_hashes(self, c: sqlite3.Connection, nodes: list[tuple[int, int, bytes]]) -> None:
        """Store new complete-subtree hashes (inside the caller's write transaction); they
        extend each level's last tile in order. A tile that fills up is written whole."""
        groups: dict[int, list[tuple[int, bytes]]] = {}
        for level, idx, h in nodes:
            groups.setdefault(key_of(level, idx), []).append((position(idx), h))
        full: list[tuple[int, bytes]] = []
        edge: list[tuple[int, int, bytes]] = []
        done: list[int] = []
        for key, hs in groups.items():
            old = self._edge.get(key)
            if old is None:
                old = b"".join(r[0] for r in c.execute(
                    "SELECT hash FROM edge WHERE key = ? ORDER BY pos", (key,)))
            blob = old + b"".join(h for _, h in hs)
            if len(blob) >= FULL:
                full.append((key, blob))
                done.append(key)
                self._edge.pop(key, None)
            else:
                edge.extend((key, pos, h) for pos, h in hs)
                self._edge[key] = blob
        if full:
            _insert_rows(c, "tiles", 2, list(chain.from_iterable(full)))
            c.execute(f"DELETE FROM edge WHERE key IN ({','.join('?' * len(done))})", done)
        if edge:
            _insert_rows(c, "edge", 3, list(chain.from_iterable(edge)))

    def entry(self, idx: int) -> bytes | None:
        row = self._conn().execute("SELECT body FROM entries WHERE idx = ?", (idx,)).fetchone()
        return None if row is None else bytes(row[0])

    def entries(self, lo: int = 0, hi: int | None = None) -> Iterator[tuple[int, bytes]]:
        if hi is None:
            rows = self._conn().execute(
                "SELECT idx, body FROM entries WHERE idx >= ? ORDER BY idx", (lo,))
        else:
            rows = self._conn().execute(
                "SELECT idx, body FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
                (lo, hi))
        for idx, body in rows:
            yield idx, bytes(body)

    def first_since(self, time_ms: int) -> int:
        c = self._conn()
        lo, hi = 0, self.size()
        while lo < hi:
            mid = (lo + hi) // 2
            row = c.execute("SELECT time_ms FROM entries WHERE idx = ?", (mid,)).fetchone()
            if row is None or row[0] < time_ms:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def reading(self, dataset: str, since: int = 0) -> list[int]:
        rows = self._conn().execute(
            "SELECT idx FROM entry_datasets WHERE dataset = ? AND idx >= ? ORDER BY idx",
            (dataset, since)).fetchall()
        return [int(r[0]) for r in rows]

    # --- checkpoints and witnesses of this log ----------------------------------------------

    def add_checkpoint(self, size: int, root: bytes, time_ms: int, note: str) -> None:
        with self._write() as c:
            c.execute("INSERT OR IGNORE INTO checkpoints VALUES (?, ?, ?, ?)",
                      (size, root, time_ms, note))

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        return _checkpoint(self._conn().execute(
            "SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone())

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        return _checkpoint(self._conn().execute(
            "SELECT size, root, note FROM checkpoints WHERE size = ?", (size,)).fetchone())

    def checkpoint_covering(self, idx: int) -> StoredCheckpoint | None:
        return _checkpoint(self._conn().execute(
            "SELECT size, root, note FROM checkpoints WHERE size > ? ORDER BY size LIMIT 1",
            (idx,)).fetchone())

    def checkpoints(self) -> list[StoredCheckpoint]:
        return [StoredCheckpoint(s, bytes(r), n) for s, r, n in self._conn().execute(
            "SELECT size, root, note FROM checkpoints ORDER BY size")]

    def cosignatures(self, size: int) -> list[str]:
        return [r[0] for r in self._conn().execute(
            "SELECT line FROM cosignatures WHERE size = ? ORDER BY witness", (size,))]

    def add_cosignature(self, size: int, witness: str, line: str) -> None:
        with self._write() as c:
            c.execute("INSERT OR REPLACE INTO cosignatures VALUES (?, ?, ?)",
                      (size, witness, line))

    def sent(self, witness: str) -> int:
        row = self._conn().execute("SELECT size FROM witness_sent WHERE witness = ?",
                                   (witness,)).fetchone()
        return 0 if row is None else int(row[0])

    def set_sent(self, witness: str, size: int) -> None:
        with self._write() as c:
            c.execute("INSERT OR REPLACE INTO witness_sent VALUES (?, ?)", (witness, size))

    # --- other hubs' logs, as their witness -------------------------------------------------

    @contextmanager
    def witnessing(self, origin: str) -> Iterator[Witnessing]:
        with self._write() as c:
            row = c.execute("SELECT size, root, note FROM witnessed WHERE origin = ?",
                            (origin,)).fetchone()
            yield _SqliteWitness(c, origin, None if row is None
                                 else Witnessed(row[0], bytes(row[1]), row[2]))

    def evidence(self) -> list[dict[str, object]]:
        return [{"origin": o, "time_ms": t, "kind": k, "detail": d, "offered": n}
                for o, t, k, d, n in self._conn().execute(
                    "SELECT e.origin, e.time_ms, e.kind, e.detail, coalesce(f.offered, 1) "
                    "FROM evidence e LEFT JOIN evidence_forks f ON f.evidence = e.id "
                    "ORDER BY e.id DESC")]

    def close(self) -> None:
        """Fold the write-ahead log into the file (a copied file is then complete)."""
        self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
