"""The sequencer: the one writer that gives entries their index.

It runs in a process of its own (:func:`main`), so hashing, SQLite and fsync never compete
with the hub's event loop for the interpreter lock: measured here, a sequencer *thread*
spent most of each commit waiting to win the lock back from a busy event loop, and every
answer waited ~7 ms for it. The hub sends batches of entries over a socket and reads back
``(index, leaf hash)`` pairs; the sequencer commits everything that queued while it was
committing in one transaction (group commit).

The same :class:`Sequencer` appends in-process for the CLI (and on any store, e.g. the
in-memory one). Writers in other processes are ordered by the store's write lock; a sequencer
that finds the log grew since its last commit reloads the tree's edge before appending.
"""

from __future__ import annotations

import logging
import socket
import struct
import time
from pathlib import Path
from typing import Any

from zhongshu.ledger import merkle
from zhongshu.ledger.entry import VERSION, iso_ms, stamp
from zhongshu.ledger.store import Batch, LedgerStore, SqliteLedgerStore

log = logging.getLogger("zhongshu.ledger")
__all__ = ["VERSION", "Body", "Item", "Sequencer", "iso_ms", "main", "stamp"]
Item = tuple[dict[str, Any], list[str]]  # an entry's fields, the datasets it names
Body = tuple[bytes, list[str], int]  # canonical bytes, datasets named, time_ms stamped
CATCH_UP_MAX = 4096  # entries appended by others that a writer follows from their bodies


class Sequencer:
    """Appends batches of entries to one ledger store: index, leaf hash, complete-subtree
    hashes, per-dataset usage index — one transaction per batch."""

    def __init__(self, store: LedgerStore, origin: str) -> None:
        self.store = store
        self.origin = origin
        self._frontier: merkle.Frontier | None = None
        self.commits = 0

    def commit(self, items: list[Item]) -> list[tuple[int, bytes]]:
        """Stamp and append ``items`` durably; their ``(index, leaf hash)`` in order.

        Raises:
            TypeError: an entry holds a value JSON cannot carry (nothing is appended).
        """
        now = int(time.time() * 1000)
        iso = iso_ms(now)
        bodies = [(stamp(f, self.origin, iso), d, now) for f, d in items]
        first, leaves = self.commit_bodies(bodies)
        return [(first + i, leaf) for i, leaf in enumerate(leaves)]

    def commit_bodies(self, bodies: list[Body]) -> tuple[int, list[bytes]]:
        """Append entries given as canonical bytes (with the datasets each names and the
        time it was stamped with), durably; the index of the first, and the leaf hashes.

        Raises:
            Exception: whatever the store raised; nothing of the batch is appended.
        """
        with self.store.appending() as tx:
            f = self._frontier
            if f is not None and f.size != tx.size:
                # another writer appended since (another replica's sequencer, the CLI
                # recording a change): follow its entries, or read the tree's edge again
                f = self._catch_up(f, tx)
            f = (merkle.Frontier.load(self.store.hash, tx.size)
                 if f is None or f.size != tx.size else merkle.Frontier(f.size, f.hashes))
            first = f.size
            batch = Batch()
            entries, nodes, index = batch.entries, batch.hashes, batch.datasets
            leaves: list[bytes] = []
            leaf_hash, append = merkle.leaf_hash, f.append
            for body, datasets, time_ms in bodies:
                idx = f.size
                leaf = leaf_hash(body)
                leaves.append(leaf)
                append(leaf, nodes)
                entries.append((idx, time_ms, body))
                for d in datasets:
                    index.append((d, idx))
            tx.write(batch)
        self._frontier = f
        self.commits += 1
        return first, leaves

    def _catch_up(self, f: merkle.Frontier, tx: Any) -> merkle.Frontier | None:
        """The frontier at ``tx.size``, from ``f`` and the leaves of the entries appended by
        others since (one read of their bodies, instead of one per hash of the tree's edge
        under the append lock), the store told the subtrees they completed
        (``tx.catch_up``, when the store keeps a cache of its own); None when the log did
        not grow by a few entries or the store cannot follow (then the edge is read)."""
        catch_up = getattr(tx, "catch_up", None)
        if catch_up is None or not 0 < tx.size - f.size <= CATCH_UP_MAX:
            return None
        g, leaf_hash = merkle.Frontier(f.size, f.hashes), merkle.leaf_hash
        nodes: list[tuple[int, int, bytes]] = []
        for idx, body in self.store.entries(f.size, tx.size):
            if idx != g.size:
                return None
            g.append(leaf_hash(body), nodes)
        if g.size != tx.size:
            return None
        catch_up(f.size, nodes)
        return g


# --- the wire between the hub and the sequencer process ---------------------------------
# request: bid u64, count u32, time_ms u64, then per entry: u32 length, the entry's bytes,
#          u16 length, the datasets it names joined by "\n"
# answer:  bid u64, first index i64 (-1: not recorded), count u32, then count leaf hashes

_HEAD = struct.Struct(">QIQ")
_ANSWER = struct.Struct(">QqI")


def request(bid: int, time_ms: int, bodies: list[tuple[bytes, list[str]]]) -> bytes:
    """One framed batch for the sequencer."""
    parts = [_HEAD.pack(bid, len(bodies), time_ms)]
    for body, datasets in bodies:
        ds = "\n".join(datasets).encode()
        parts += (len(body).to_bytes(4, "big"), body, len(ds).to_bytes(2, "big"), ds)
    return frame(b"".join(parts))


def _parse(msg: bytes) -> tuple[int, list[Body]]:
    bid, count, time_ms = _HEAD.unpack_from(msg)
    at, out = _HEAD.size, []
    for _ in range(count):
        n = int.from_bytes(msg[at:at + 4], "big")
        body = msg[at + 4:at + 4 + n]
        at += 4 + n
        m = int.from_bytes(msg[at:at + 2], "big")
        ds = msg[at + 2:at + 2 + m].decode()
        at += 2 + m
        out.append((body, ds.split("\n") if ds else [], time_ms))
    return bid, out


def answer(msg: bytes) -> tuple[int, int, int, bytes]:
    """``(bid, first index or -1, count, leaf hashes back to back)`` of one answer."""
    bid, first, count = _ANSWER.unpack_from(msg)
    return bid, first, count, msg[_ANSWER.size:]


def frame(payload: bytes) -> bytes:
    """One message on the sequencer's socket: 4-byte big-endian length, then the bytes."""
    return len(payload).to_bytes(4, "big") + payload


def frames(buf: bytearray) -> list[bytes]:
    """Take every complete message off the front of ``buf``."""
    out = []
    while len(buf) >= 4:
        n = int.from_bytes(buf[:4], "big")
        if len(buf) < 4 + n:
            break
        out.append(bytes(buf[4:4 + n]))
        del buf[:4 + n]
    return out


def location(store: LedgerStore) -> tuple[str, str] | None:
    """Where another process opens ``store``: ``("sqlite", path)``, ``("postgresql", url)``,
    or None for a store only this process holds (the in-memory one)."""
    if isinstance(store, SqliteLedgerStore):
        return ("sqlite", str(store.path))
    url = getattr(store, "url", None)  # a PostgresLedgerStore (psycopg imported only then)
    if isinstance(url, str) and type(store).__name__ == "PostgresLedgerStore":
        return ("postgresql", url)
    return None


def open_at(where: tuple[str, str]) -> LedgerStore:
    """The store at a :func:`location`."""
    kind, at = where
    if kind == "postgresql":
        from zhongshu.ledger.postgres import PostgresLedgerStore

        return PostgresLedgerStore(at)
    return SqliteLedgerStore(Path(at))


def main(sock: socket.socket, where: tuple[str, str], origin: str, max_batch: int) -> None:
    """The sequencer process: read batches, commit what has queued together (in order),
    answer each batch with its first index; stop at end of input (the hub closed the
    socket, or died)."""
    seq = Sequencer(open_at(where), origin)
    buf = bytearray()
    while True:
        msgs: list[tuple[int, list[Body]]] = []
        try:
            while not msgs:  # wait for at least one batch…
                data = sock.recv(1 << 20)
                if not data:
                    return
                buf += data
                msgs = [_parse(m) for m in frames(buf)]
            n = sum(len(m[1]) for m in msgs)
            while n < max_batch:  # …and take whatever else has arrived
                try:
                    data = sock.recv(1 << 20, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                if not data:
                    break
                buf += data
                more = [_parse(m) for m in frames(buf)]
                msgs += more
                n += sum(len(m[1]) for m in more)
        except OSError:
            return
        try:
            first, leaves = seq.commit_bodies([b for m in msgs for b in m[1]])
        except Exception as e:  # the disk, not the caller: nothing is answered unrecorded
            log.error("ledger append failed: %s", e)
            first, leaves = -1, []
        out, at = [], 0
        for bid, bodies in msgs:
            n = len(bodies)
            out.append(frame(_ANSWER.pack(bid, first, n) + b"".join(leaves[at:at + n])))
            at += n
            if first >= 0:
                first += n
        try:
            sock.sendall(b"".join(out))
        except OSError:
            return
