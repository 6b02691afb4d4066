"""A ledger in PostgreSQL: the :class:`~zhongshu.ledger.store.LedgerStore` contract in the
hub's shared database, so every replica of the hub appends to, and serves proofs of, one log.

The tables (``ledger_*``, the same as the SQLite file's) are made by the store's migrations
(``zhongshu db upgrade``), never here. Appends are ordered across every process by a
transaction-level advisory lock (:data:`APPEND_LOCK`, the counterpart of SQLite's ``BEGIN
IMMEDIATE``): a writer reads the log's size under the lock, so no index is handed out twice,
whatever the number of replicas or sequencers; the primary key on the index would refuse it
anyway. Each append transaction commits with ``synchronous_commit = on``: an entry is durable
(in the server's WAL on disk, and on synchronous standbys where the server has them) once its
batch commits, and no other process sees it before. A writer that finds entries of other
writers since its last batch follows them from their bodies (one read) rather than reading
the tree's edge again under the lock. Which process is *the* sequencer is a separate lease
(:mod:`.lease`).
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from zhongshu.errors import LedgerInvalid, LedgerUnavailable
from zhongshu.ledger.layout import FULL, HASH, key_of, offset, position, tile_key
from zhongshu.ledger.store import Batch, StoredCheckpoint, Witnessed

__all__ = ["APPEND_LOCK", "PostgresLedgerStore"]

APPEND_LOCK = (0x5A53_0010, 0)  # advisory lock (namespace, key) of one append transaction
WAIT_S = 3.0  # seconds an append or a read of its own pool waits for a connection
_WITNESS_LOCK = 0x5A53_0011  # with a key of the origin: one witness step at a time


def _checkpoint(row: tuple[Any, ...] | None) -> StoredCheckpoint | None:
    return None if row is None else StoredCheckpoint(int(row[0]), bytes(row[1]), row[2])


class _PostgresAppend:
    def __init__(self, store: PostgresLedgerStore, con: psycopg.Connection[Any],
                 size: int) -> None:
        self._store, self._con, self._size = store, con, size
        self.written = 0

    @property
    def size(self) -> int:
        return self._size

    def catch_up(self, since: int, nodes: list[tuple[int, int, bytes]]) -> None:
        """The complete subtrees that other writers' entries from ``since`` to :attr:`size`
        completed (computed by the caller from their bodies): the writer's cache of partial
        tiles, if it was of a log of ``since`` entries, follows them instead of being read
        again."""
        store = self._store
        if store._edge_size == since and self.written == 0:
            store._extend_edge(nodes)
            store._edge_size = self._size

    def write(self, batch: Batch) -> None:
        if not batch.entries:
            return
        batch.check_follows(self._size + self.written)
        store = self._store
        if store._edge_size != self._size + self.written:  # others' partial tiles: re-read
            store._edge.clear()
        cur = self._con.cursor()
        with cur.copy("COPY ledger_entries (idx, time_ms, body) FROM STDIN") as cp:
            for row in batch.entries:
                cp.write_row(row)
        self._store._put_hashes(self._con, batch.hashes)
        if batch.datasets:
            with cur.copy("COPY ledger_entry_datasets (dataset, idx) FROM STDIN") as cp:
                for used in batch.datasets:
                    cp.write_row(used)
        self.written += len(batch.entries)
        store._edge_size = self._size + self.written


class _PostgresWitness:
    def __init__(self, con: psycopg.Connection[Any], origin: str,
                 seen: Witnessed | None) -> None:
        self._con, self._origin, self._seen = con, origin, seen

    @property
    def seen(self) -> Witnessed | None:
        return self._seen

    def keep(self, size: int, root: bytes, note: str) -> None:
        self._con.execute("INSERT INTO ledger_witnessed VALUES (%s, %s, %s, %s) ON CONFLICT "
                          "(origin) DO UPDATE SET size = excluded.size, root = excluded.root, "
                          "note = excluded.note", (self._origin, size, root, note))

    def evidence(self, kind: str, time_ms: int, detail: str, fork: str) -> bool:
        if self._con.execute("UPDATE ledger_evidence_forks SET offered = offered + 1 "
                             "WHERE origin = %s AND fork = %s", (self._origin, fork)).rowcount:
            return False
        row = self._con.execute("INSERT INTO ledger_evidence (origin, time_ms, kind, detail) "
                                "VALUES (%s, %s, %s, %s) RETURNING id",
                                (self._origin, time_ms, kind, detail)).fetchone()
        assert row is not None
        self._con.execute("INSERT INTO ledger_evidence_forks VALUES (%s, %s, %s, 1)",
                          (self._origin, fork, row[0]))
        return True


class PostgresLedgerStore:
    """A ledger in the hub's PostgreSQL database, shared by every process that opens it.

    Args:
        url: the database (for a process of its own: the sequencer's); never shown.
        pool: connections to use (the hub's stores' pool); default: a small pool of its own,
            closed with the store.
        connect: how to take one of ``pool``'s connections (the hub's stores' ``connection``,
            which stops waiting for a server that went away); default: from the pool,
            waiting at most ``WAIT_S``.

    Raises:
        LedgerUnavailable: (on opening its own pool) the database cannot be reached.
    """

    def __init__(self, url: str, pool: ConnectionPool | None = None,
                 connect: Callable[[], AbstractContextManager[psycopg.Connection[Any]]]
                 | None = None) -> None:
        self.url = url
        self._owned = pool is None
        if pool is None:
            pool = ConnectionPool(url, min_size=1, max_size=4, open=False, timeout=WAIT_S,
                                  kwargs={"autocommit": True}, name="zhongshu-ledger")
            try:
                pool.open(wait=True, timeout=10)
            except Exception:
                pool.close()
                raise LedgerUnavailable("the ledger's database cannot be reached") from None
        self.pool = pool
        self._connect = connect or self._connection
        self._full: OrderedDict[int, bytes] = OrderedDict()  # full tiles never change
        self._full_lock = threading.Lock()
        self._edge: dict[int, bytes] = {}  # the writer's partial tiles, by key…
        self._edge_size: int | None = None  # …as of a log of this size
        # what readers saw of partial tiles: a committed hash never changes, so a prefix
        # read once serves every later proof (one query per tile extends it)
        self._seen: dict[int, bytes] = {}

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """One of its own pool's connections (waiting at most ``WAIT_S``: an append or a
        read fails, and the hub answers 503, rather than wait for a server that is away).

        Raises:
            LedgerUnavailable: none could be had in time, or the server went away.
        """
        try:
            with self.pool.connection() as con:
                yield con
        except (PoolTimeout, psycopg.OperationalError) as e:
            raise LedgerUnavailable(f"the ledger's database does not answer "
                                    f"({type(e).__name__})") from None

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        with self._connect() as con:
            return con.execute(sql, args).fetchone()

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._connect() as con:
            return con.execute(sql, args).fetchall()

    @contextmanager
    def _write(self, *lock: int) -> Iterator[psycopg.Connection[Any]]:
        """One durable write transaction, holding the advisory lock ``lock`` if given."""
        with self._connect() as con, con.transaction():
            con.execute("SET LOCAL synchronous_commit = on")
            if lock:
                con.execute("SELECT pg_advisory_xact_lock(%s, %s)", lock)
            yield con

    # --- the log ----------------------------------------------------------------------------

    @contextmanager
    def appending(self) -> Iterator[_PostgresAppend]:
        """An append transaction under :data:`APPEND_LOCK`, durable when the block ends.

        It commits synchronously, holding the lock until the server has flushed it: no
        other process sees an entry before it is durable, so what every process reads of
        the log (and keeps: full tiles, prefixes of partial ones) is never lost in a crash
        of the server. (Committing asynchronously and flushing after the lock was measured
        3× faster with two writers, but let other writers and readers see, and build on,
        entries a crash could still lose.)"""
        try:
            with self._write(*APPEND_LOCK) as con:
                size = self._size(con)
                yield _PostgresAppend(self, con, size)  # it keeps _edge_size as it writes
        except BaseException:
            self._edge.clear()  # what _put_hashes cached was not committed
            self._edge_size = None
            raise

    @staticmethod
    def _size(con: psycopg.Connection[Any]) -> int:
        row = con.execute("SELECT max(idx) FROM ledger_entries").fetchone()
        return 0 if row is None or row[0] is None else int(row[0]) + 1

    def size(self) -> int:
        with self._connect() as con:
            return self._size(con)

    def _written(self, key: int) -> bytes | None:
        """A tile written whole (kept in memory once read: it never changes), or None while
        it fills up."""
        with self._full_lock:
            blob = self._full.get(key)
            if blob is not None:
                self._full.move_to_end(key)
                return blob
        row = self._one("SELECT hashes FROM ledger_tiles WHERE key = %s", (key,))
        if row is None:
            return None
        blob = bytes(row[0])
        if len(blob) == FULL:
            with self._full_lock:
                self._full[key] = blob
                if len(self._full) > 4096:
                    self._full.popitem(last=False)
        return blob

    def _partial(self, key: int, want: int | None) -> bytes:
        """The hashes of a tile still filling, back to back: those seen before, extended from
        the database when they hold fewer than ``want`` bytes (None: always)."""
        with self._full_lock:
            blob = self._seen.get(key, b"")
        if want is not None and len(blob) >= want:
            return blob
        more = self._rows("SELECT hash FROM ledger_edge WHERE key = %s AND pos >= %s "
                          "ORDER BY pos", (key, len(blob) // HASH))
        blob += b"".join(bytes(r[0]) for r in more)
        with self._full_lock:
            if len(self._seen) > 64:
                self._seen.clear()
            if len(blob) > len(self._seen.get(key, b"")):
                self._seen[key] = blob
        return blob

    def hash(self, level: int, idx: int) -> bytes:
        key = key_of(level, idx)
        at = offset(idx)
        with self._full_lock:  # in memory first: a full tile, or a filling one seen far enough
            blob = self._full.get(key) or self._seen.get(key, b"")
        if len(blob) < at + HASH:
            blob = self._written(key) or b""
        if len(blob) < at + HASH:  # its tile is still filling: the edge (or it just filled up)
            blob = self._partial(key, at + HASH)
            if len(blob) < at + HASH:
                blob = self._written(key) or blob
        h = blob[at:at + HASH]
        if len(h) != HASH:
            raise LedgerInvalid(f"the ledger's database lacks the hash of subtree {level}/{idx}")
        return h

    def tile(self, level: int, n: int) -> bytes:
        key = tile_key(level, n)
        blob = self._written(key)
        if blob is not None:
            return blob
        blob = self._partial(key, None)  # not full yet: its hashes so far
        if len(blob) == 0:
            blob = self._written(key) or b""  # it filled up meanwhile (or does not exist)
        return blob

    def _extend_edge(self, nodes: list[tuple[int, int, bytes]],
                     con: psycopg.Connection[Any] | None = None
                     ) -> tuple[list[tuple[int, bytes]], list[tuple[int, int, bytes]], list[int]]:
        """Extend the cache of partial tiles with new complete-subtree hashes; what to write:
        the tiles they fill up (key, hashes), the edge rows of the others (key, position,
        hash) and the keys of the tiles filled. A tile not in the cache is read through
        ``con`` (without one — following other writers — it is left out: it was not
        cached, so it is read when this writer extends it)."""
        groups: dict[int, list[tuple[int, bytes]]] = {}
        for level, idx, h in nodes:
            groups.setdefault(key_of(level, idx), []).append((position(idx), h))
        full: list[tuple[int, bytes]] = []
        edge: list[tuple[int, int, bytes]] = []
        done: list[int] = []
        for key, hs in groups.items():
            old = self._edge.get(key)
            if old is None:
                if con is None:
                    continue
                old = b"".join(bytes(r[0]) for r in con.execute(
                    "SELECT hash FROM ledger_edge WHERE key = %s ORDER BY pos", (key,)))
            blob = old + b"".join(h for _, h in hs)
            if len(blob) >= FULL:
                full.append((key, blob))
                done.append(key)
                self._edge.pop(key, None)
            else:
                edge.extend((key, pos, h) for pos, h in hs)
                self._edge[key] = blob
        return full, edge, done

    def _put_hashes(self, con: psycopg.Connection[Any],
                    nodes: list[tuple[int, int, bytes]]) -> None:
        """Store new complete-subtree hashes (inside the caller's write transaction); they
        extend each level's last tile in order. A tile that fills up is written whole."""
        full, edge, done = self._extend_edge(nodes, con)
        cur = con.cursor()
        if full:
            cur.executemany("INSERT INTO ledger_tiles (key, hashes) VALUES (%s, %s)", full)
            con.execute("DELETE FROM ledger_edge WHERE key = ANY(%s)", (done,))
        if edge:
            with cur.copy("COPY ledger_edge (key, pos, hash) FROM STDIN") as cp:
                for row in edge:
                    cp.write_row(row)

    def entry(self, idx: int) -> bytes | None:
        row = self._one("SELECT body FROM ledger_entries WHERE idx = %s", (idx,))
        return None if row is None else bytes(row[0])

    def entries(self, lo: int = 0, hi: int | None = None) -> Iterator[tuple[int, bytes]]:
        step = 10_000  # pages: a long log is not held in memory at once
        while hi is None or lo < hi:
            top = lo + step if hi is None else min(hi, lo + step)
            rows = self._rows("SELECT idx, body FROM ledger_entries WHERE idx >= %s AND "
                              "idx < %s ORDER BY idx", (lo, top))
            for idx, body in rows:
                yield int(idx), bytes(body)
            if hi is None and len(rows) < step:
                return
            lo = top

    def first_since(self, time_ms: int) -> int:
        lo, hi = 0, self.size()
        with self._connect() as con:
            while lo < hi:
                mid = (lo + hi) // 2
                row = con.execute("SELECT time_ms FROM ledger_entries WHERE idx = %s",
                                  (mid,)).fetchone()
                if row is None or row[0] < time_ms:
                    lo = mid + 1
                else:
                    hi = mid
        return lo

    def reading(self, dataset: str, since: int = 0) -> list[int]:
        return [int(r[0]) for r in self._rows(
            "SELECT idx FROM ledger_entry_datasets WHERE dataset = %s AND idx >= %s "
            "ORDER BY idx", (dataset, since))]

    # --- checkpoints and witnesses of this log ----------------------------------------------

    def add_checkpoint(self, size: int, root: bytes, time_ms: int, note: str) -> None:
        with self._write() as con:
            con.execute("INSERT INTO ledger_checkpoints VALUES (%s, %s, %s, %s) "
                        "ON CONFLICT (size) DO NOTHING", (size, root, time_ms, note))

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        return _checkpoint(self._one("SELECT size, root, note FROM ledger_checkpoints "
                                     "ORDER BY size DESC LIMIT 1"))

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        return _checkpoint(self._one("SELECT size, root, note FROM ledger_checkpoints "
                                     "WHERE size = %s", (size,)))

    def checkpoint_covering(self, idx: int) -> StoredCheckpoint | None:
        return _checkpoint(self._one("SELECT size, root, note FROM ledger_checkpoints "
                                     "WHERE size > %s ORDER BY size LIMIT 1", (idx,)))

    def checkpoints(self) -> list[StoredCheckpoint]:
        return [StoredCheckpoint(int(s), bytes(r), n) for s, r, n in self._rows(
            "SELECT size, root, note FROM ledger_checkpoints ORDER BY size")]

    def cosignatures(self, size: int) -> list[str]:
        return [r[0] for r in self._rows(
            "SELECT line FROM ledger_cosignatures WHERE size = %s ORDER BY witness COLLATE "
            "\"C\"", (size,))]

    def add_cosignature(self, size: int, witness: str, line: str) -> None:
        with self._write() as con:
            con.execute("INSERT INTO ledger_cosignatures VALUES (%s, %s, %s) ON CONFLICT "
                        "(size, witness) DO UPDATE SET line = excluded.line",
                        (size, witness, line))

    def sent(self, witness: str) -> int:
        row = self._one("SELECT size FROM ledger_witness_sent WHERE witness = %s", (witness,))
        return 0 if row is None else int(row[0])

    def set_sent(self, witness: str, size: int) -> None:
        with self._write() as con:
            con.execute("INSERT INTO ledger_witness_sent VALUES (%s, %s) ON CONFLICT "
                        "(witness) DO UPDATE SET size = excluded.size", (witness, size))

    # --- other hubs' logs, as their witness -------------------------------------------------

    @contextmanager
    def witnessing(self, origin: str) -> Iterator[_PostgresWitness]:
        lock = zlib.crc32(origin.encode()) - 2**31
        with self._write(_WITNESS_LOCK, lock) as con:
            row = con.execute("SELECT size, root, note FROM ledger_witnessed WHERE origin = %s",
                              (origin,)).fetchone()
            yield _PostgresWitness(con, origin, None if row is None
                                   else Witnessed(int(row[0]), bytes(row[1]), row[2]))

    def evidence(self) -> list[dict[str, object]]:
        return [{"origin": o, "time_ms": int(t), "kind": k, "detail": d, "offered": int(n)}
                for o, t, k, d, n in self._rows(
                    "SELECT e.origin, e.time_ms, e.kind, e.detail, coalesce(f.offered, 1) "
                    "FROM ledger_evidence e LEFT JOIN ledger_evidence_forks f "
                    "ON f.evidence = e.id ORDER BY e.id DESC")]

    def close(self) -> None:
        """Close the pool if the store opened it (everything is committed already)."""
        if self._owned:
            self.pool.close()
