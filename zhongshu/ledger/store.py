"""The ledger's SQLite file: entries, complete-subtree hashes, checkpoints, witness state.

Complete-subtree hashes are kept 256 to a row once their tile is full: row ``level << 48 |
n`` of ``tiles`` holds the hashes ``(level, 256n … 256n+255)`` back to back (rows of levels 0,
8, 16… are exactly the C2SP tlog-tiles served to verifiers); the hashes of tiles not yet full
are single rows of ``edge``, so a small batch writes a few small rows, not whole tiles.

One writer at a time (``BEGIN IMMEDIATE``), so another process (the CLI recording a
governance change while the hub runs) appends safely; readers never block (WAL).
Commits are fsynced (``synchronous=FULL``): an entry is durable once its batch commits.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from zhongshu.errors import LedgerInvalid

FORMAT = 1  # PRAGMA user_version of the file layout below
TILE = 256
HASH = 32
FULL = TILE * HASH

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
"""


_MAX_PARAMS = 30_000  # below SQLite's 32,766 bound variables per statement


def insert_rows(c: sqlite3.Connection, table: str, width: int, flat: list[object]) -> None:
    """Insert rows given flat (``width`` values each) with one multi-row statement per
    30,000 values: one SQLite call instead of one per row."""
    step = _MAX_PARAMS // width * width
    for lo in range(0, len(flat), step):
        chunk = flat[lo:lo + step]
        one = "(" + ",".join("?" * width) + ")"
        c.execute(f"INSERT INTO {table} VALUES " + ",".join([one] * (len(chunk) // width)),
                  chunk)


class LedgerStore:
    """Typed access to one ledger file; each thread gets its own connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._full: OrderedDict[int, bytes] = OrderedDict()  # full tiles never change
        self._full_lock = threading.Lock()
        self._edge: dict[int, bytes] = {}  # the writer's partial tiles, by key
        path.parent.mkdir(parents=True, exist_ok=True)
        c = self.conn()
        version = c.execute("PRAGMA user_version").fetchone()[0]
        fresh = c.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
        if not fresh and version != FORMAT:
            raise LedgerInvalid(f"{path} is a ledger of format {version}, this hub writes "
                                f"format {FORMAT}; keep it aside (it still verifies with the "
                                "version that wrote it) and start a new one")
        c.executescript(SCHEMA)
        c.execute(f"PRAGMA user_version = {FORMAT}")

    def conn(self) -> sqlite3.Connection:
        """This thread's connection."""
        c = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.path, isolation_level=None, timeout=30,
                                check_same_thread=False)
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=FULL")
            self._local.conn = c
        return c

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the file's write lock from the start."""
        c = self.conn()
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    def size(self, c: sqlite3.Connection | None = None) -> int:
        """Number of entries."""
        row = (c or self.conn()).execute("SELECT max(idx) FROM entries").fetchone()
        return 0 if row[0] is None else row[0] + 1

    def _written(self, key: int) -> bytes | None:
        """A tile written whole (kept in memory once read: it never changes), or None while
        it fills up."""
        with self._full_lock:
            blob = self._full.get(key)
            if blob is not None:
                self._full.move_to_end(key)
                return blob
        row = self.conn().execute("SELECT hashes FROM tiles WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        blob = bytes(row[0])
        if len(blob) == FULL:
            with self._full_lock:
                self._full[key] = blob
                if len(self._full) > 4096:
                    self._full.popitem(last=False)
        return blob

    def _tile(self, key: int) -> bytes:
        blob = self._written(key)
        if blob is not None:
            return blob
        return b"".join(r[0] for r in self.conn().execute(  # not full yet: its hashes so far
            "SELECT hash FROM edge WHERE key = ? ORDER BY pos", (key,)))

    def hash(self, level: int, idx: int) -> bytes:
        """A stored complete-subtree hash.

        Raises:
            LedgerInvalid: it is missing (the file was damaged).
        """
        key = level << 48 | idx // TILE
        blob = self._written(key)
        if blob is None:  # its tile is still filling: one row of the edge
            row = self.conn().execute("SELECT hash FROM edge WHERE key = ? AND pos = ?",
                                      (key, idx % TILE)).fetchone()
            h = b"" if row is None else bytes(row[0])
        else:
            at = (idx % TILE) * HASH
            h = blob[at:at + HASH]
        if len(h) != HASH:
            raise LedgerInvalid(f"the ledger file lacks the hash of subtree {level}/{idx}")
        return h

    def tile(self, level: int, n: int) -> bytes:
        """The stored hashes of level ``level``, ``256n`` onwards (up to 256, back to back)."""
        return self._tile(level << 48 | n)

    def put_hashes(self, c: sqlite3.Connection, nodes: list[tuple[int, int, bytes]]) -> None:
        """Store new complete-subtree hashes (inside the caller's write transaction); they
        extend each level's last tile in order. A tile that fills up is written whole."""
        groups: dict[int, list[tuple[int, bytes]]] = {}
        for level, idx, h in nodes:
            groups.setdefault(level << 48 | idx // TILE, []).append((idx % TILE, h))
        full, edge, done = [], [], []
        for key, hs in groups.items():
            old = self._edge.get(key)
            if old is None:
                old = b"".join(r[0] for r in c.execute(
                    "SELECT hash FROM edge WHERE key = ? ORDER BY pos", (key,)))
            blob = old + b"".join(h for _, h in hs)
            if len(blob) >= FULL:
                full.append((key, blob))
                done.append((key,))
                self._edge.pop(key, None)
            else:
                edge.extend((key, pos, h) for pos, h in hs)
                self._edge[key] = blob
        if full:
            insert_rows(c, "tiles", 2, [v for row in full for v in row])
            c.execute(f"DELETE FROM edge WHERE key IN ({','.join('?' * len(done))})",
                      [k for (k,) in done])
        if edge:
            insert_rows(c, "edge", 3, [v for row in edge for v in row])

    def forget_edge(self) -> None:
        """Drop the writer's cached partial tiles (after a failed commit, or when another
        process appended)."""
        self._edge.clear()

    def entry(self, idx: int) -> bytes | None:
        """An entry's canonical bytes."""
        row = self.conn().execute("SELECT body FROM entries WHERE idx = ?", (idx,)).fetchone()
        return None if row is None else bytes(row[0])

    def entries(self, lo: int = 0, hi: int | None = None) -> Iterator[tuple[int, bytes]]:
        """``(index, bytes)`` of entries ``[lo, hi)`` in order."""
        q = "SELECT idx, body FROM entries WHERE idx >= ?" + (" AND idx < ?" if hi else "")
        args = (lo, hi) if hi else (lo,)
        for idx, body in self.conn().execute(q + " ORDER BY idx", args):
            yield idx, bytes(body)

    def first_since(self, time_ms: int) -> int:
        """The first index recorded at or after ``time_ms`` (entry times never decrease)."""
        c = self.conn()
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
        """Indices of entries naming ``dataset``, from ``since``."""
        rows = self.conn().execute(
            "SELECT idx FROM entry_datasets WHERE dataset = ? AND idx >= ? ORDER BY idx",
            (dataset, since)).fetchall()
        return [r[0] for r in rows]

    # --- checkpoints ------------------------------------------------------------------------

    def latest_checkpoint(self) -> tuple[int, bytes, str] | None:
        """``(size, root, note)`` of the newest checkpoint signed."""
        row = self.conn().execute(
            "SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
        return None if row is None else (row[0], bytes(row[1]), row[2])

    def checkpoint_covering(self, idx: int) -> tuple[int, bytes, str] | None:
        """The smallest checkpoint that includes entry ``idx``."""
        row = self.conn().execute(
            "SELECT size, root, note FROM checkpoints WHERE size > ? ORDER BY size LIMIT 1",
            (idx,)).fetchone()
        return None if row is None else (row[0], bytes(row[1]), row[2])

    def checkpoints(self) -> list[tuple[int, bytes, str]]:
        """Every checkpoint signed, oldest first."""
        return [(s, bytes(r), n) for s, r, n in self.conn().execute(
            "SELECT size, root, note FROM checkpoints ORDER BY size")]

    def cosignatures(self, size: int) -> list[str]:
        """Cosignature lines collected for the checkpoint of ``size``."""
        return [r[0] for r in self.conn().execute(
            "SELECT line FROM cosignatures WHERE size = ? ORDER BY witness", (size,))]

    def add_cosignature(self, size: int, witness: str, line: str) -> None:
        """Keep a witness's cosignature of the checkpoint of ``size``."""
        with self.write() as c:
            c.execute("INSERT OR REPLACE INTO cosignatures VALUES (?, ?, ?)",
                      (size, witness, line))

    def sent(self, witness: str) -> int:
        """The size this log last had cosigned by ``witness`` (0 if never)."""
        row = self.conn().execute("SELECT size FROM witness_sent WHERE witness = ?",
                                  (witness,)).fetchone()
        return 0 if row is None else row[0]

    def set_sent(self, witness: str, size: int) -> None:
        """Remember the size ``witness`` has cosigned."""
        with self.write() as c:
            c.execute("INSERT OR REPLACE INTO witness_sent VALUES (?, ?)", (witness, size))

    def close(self) -> None:
        """Fold the write-ahead log into the file (a copied file is then complete)."""
        self.conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def evidence(self) -> list[dict[str, object]]:
        """Recorded evidence of misbehaving logs (forks, bad proofs), newest first."""
        return [{"origin": o, "time_ms": t, "kind": k, "detail": d} for o, t, k, d in
                self.conn().execute("SELECT origin, time_ms, kind, detail FROM evidence "
                                    "ORDER BY id DESC")]
