"""A ledger kept in memory: the :class:`~zhongshu.ledger.store.LedgerStore` contract without a
file, for tests and throwaway hubs.

Nothing survives the process, and no other process can append to it, so a
:class:`~zhongshu.ledger.Ledger` on it appends in-process (never through the sequencer
process). Writes are staged and applied when their transaction ends, under one lock, so a
reader never sees an entry before its hashes.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from zhongshu.errors import LedgerInvalid
from zhongshu.ledger.layout import key_of, position, tile_key
from zhongshu.ledger.store import Appending, Batch, StoredCheckpoint, Witnessed, Witnessing

__all__ = ["MemoryLedgerStore"]


class _MemoryAppend:
    def __init__(self, size: int) -> None:
        self._size = size
        self.batches: list[Batch] = []
        self.written = 0

    @property
    def size(self) -> int:
        return self._size

    def write(self, batch: Batch) -> None:
        if not batch.entries:
            return
        batch.check_follows(self._size + self.written)
        self.batches.append(batch)
        self.written += len(batch.entries)


class _MemoryWitness:
    def __init__(self, seen: Witnessed | None, forks: set[str]) -> None:
        self._seen = seen
        self._forks = forks  # the forks of this origin already kept (read only)
        self.kept: Witnessed | None = None
        self.evidence_kept: list[tuple[str, int, str, str]] = []
        self.offered_again: list[str] = []

    @property
    def seen(self) -> Witnessed | None:
        return self._seen

    def keep(self, size: int, root: bytes, note: str) -> None:
        self.kept = Witnessed(size, root, note)

    def evidence(self, kind: str, time_ms: int, detail: str, fork: str) -> bool:
        if fork in self._forks or any(f == fork for *_, f in self.evidence_kept):
            self.offered_again.append(fork)
            return False
        self.evidence_kept.append((kind, time_ms, detail, fork))
        return True


class MemoryLedgerStore:
    """A ledger in this process's memory (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._bodies: list[bytes] = []
        self._times: list[int] = []
        self._tiles: dict[int, list[bytes]] = {}
        self._datasets: dict[str, list[int]] = {}
        self._checkpoints: dict[int, StoredCheckpoint] = {}
        self._sizes: list[int] = []  # of checkpoints, sorted
        self._cosignatures: dict[int, dict[str, str]] = {}
        self._sent: dict[str, int] = {}
        self._witnessed: dict[str, Witnessed] = {}
        self._evidence: list[dict[str, object]] = []
        self._forks: dict[tuple[str, str], dict[str, object]] = {}  # (origin, fork) → evidence

    # --- the log ----------------------------------------------------------------------------

    @contextmanager
    def appending(self) -> Iterator[Appending]:
        with self._lock:
            tx = _MemoryAppend(len(self._bodies))
            yield tx
            filled: dict[int, int] = {}  # checked whole before anything is applied
            for batch in tx.batches:
                for level, idx, _ in batch.hashes:
                    key = key_of(level, idx)
                    n = filled.get(key, len(self._tiles.get(key, ())))
                    if position(idx) != n:
                        raise LedgerInvalid(f"hash {level}/{idx} does not extend its tile")
                    filled[key] = n + 1
            for batch in tx.batches:
                for level, idx, h in batch.hashes:
                    self._tiles.setdefault(key_of(level, idx), []).append(h)
                for dataset, idx in batch.datasets:
                    self._datasets.setdefault(dataset, []).append(idx)
                for _, time_ms, body in batch.entries:  # the size grows last
                    self._times.append(time_ms)
                    self._bodies.append(body)

    def size(self) -> int:
        return len(self._bodies)

    def hash(self, level: int, idx: int) -> bytes:
        tile = self._tiles.get(key_of(level, idx), [])
        at = position(idx)
        if at >= len(tile):
            raise LedgerInvalid(f"the ledger lacks the hash of subtree {level}/{idx}")
        return tile[at]

    def tile(self, level: int, n: int) -> bytes:
        return b"".join(self._tiles.get(tile_key(level, n), []))

    def entry(self, idx: int) -> bytes | None:
        return self._bodies[idx] if 0 <= idx < len(self._bodies) else None

    def entries(self, lo: int = 0, hi: int | None = None) -> Iterator[tuple[int, bytes]]:
        bodies = self._bodies[max(lo, 0):hi]
        for i, body in enumerate(bodies):
            yield max(lo, 0) + i, body

    def first_since(self, time_ms: int) -> int:
        return bisect.bisect_left(self._times, time_ms)

    def reading(self, dataset: str, since: int = 0) -> list[int]:
        found = self._datasets.get(dataset, [])
        return found[bisect.bisect_left(found, since):]

    # --- checkpoints and witnesses of this log ----------------------------------------------

    def add_checkpoint(self, size: int, root: bytes, time_ms: int, note: str) -> None:
        with self._lock:
            if size not in self._checkpoints:
                self._checkpoints[size] = StoredCheckpoint(size, root, note)
                bisect.insort(self._sizes, size)

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        with self._lock:
            return self._checkpoints[self._sizes[-1]] if self._sizes else None

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        return self._checkpoints.get(size)

    def checkpoint_covering(self, idx: int) -> StoredCheckpoint | None:
        with self._lock:
            at = bisect.bisect_right(self._sizes, idx)
            return self._checkpoints[self._sizes[at]] if at < len(self._sizes) else None

    def checkpoints(self) -> list[StoredCheckpoint]:
        with self._lock:
            return [self._checkpoints[s] for s in self._sizes]

    def cosignatures(self, size: int) -> list[str]:
        with self._lock:
            lines = self._cosignatures.get(size, {})
            return [lines[w] for w in sorted(lines)]

    def add_cosignature(self, size: int, witness: str, line: str) -> None:
        with self._lock:
            self._cosignatures.setdefault(size, {})[witness] = line

    def sent(self, witness: str) -> int:
        return self._sent.get(witness, 0)

    def set_sent(self, witness: str, size: int) -> None:
        self._sent[witness] = size

    # --- other hubs' logs, as their witness -------------------------------------------------

    @contextmanager
    def witnessing(self, origin: str) -> Iterator[Witnessing]:
        with self._lock:
            tx = _MemoryWitness(self._witnessed.get(origin),
                                {f for o, f in self._forks if o == origin})
            yield tx
            if tx.kept is not None:
                self._witnessed[origin] = tx.kept
            for kind, time_ms, detail, fork in tx.evidence_kept:
                kept: dict[str, object] = {"origin": origin, "time_ms": time_ms, "kind": kind,
                                           "detail": detail, "offered": 1}
                self._evidence.append(kept)
                self._forks[(origin, fork)] = kept
            for fork in tx.offered_again:
                again = self._forks[(origin, fork)]
                again["offered"] = int(str(again["offered"])) + 1

    def evidence(self) -> list[dict[str, object]]:
        with self._lock:
            return [dict(e) for e in reversed(self._evidence)]

    def close(self) -> None:
        """Nothing to fold: the store lives only as long as the process."""
