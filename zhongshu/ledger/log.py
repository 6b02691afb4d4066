"""The hub's ledger: one sequencer appending batches, a publisher signing checkpoints and
asking witnesses to cosign them.

Callers hand an entry's fields to :meth:`Ledger.append` and wait on the returned future:
it resolves with the receipt once the batch holding the entry is committed (fsynced), so
an answer is never sent before its entry is durable. Batches form by themselves: whatever
queued while the previous batch was committing goes into the next (group commit).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import httpx

from zhongshu.config import City, LedgerSettings
from zhongshu.errors import LedgerInvalid, LedgerUnavailable
from zhongshu.ledger import canonical, entry, merkle, note
from zhongshu.ledger.store import LedgerStore

log = logging.getLogger("zhongshu.ledger")
VERSION = 1


class Receipt(NamedTuple):
    """Where an exchange was recorded: the ledger's origin, the entry's index and leaf hash."""

    ledger: str
    index: int
    leaf: bytes

    @property
    def entry_hash(self) -> str:
        """Hex RFC 9162 leaf hash of the entry."""
        return self.leaf.hex()

    def to_dict(self) -> dict[str, Any]:
        return {"ledger": self.ledger, "index": self.index, "entry_hash": self.leaf.hex()}


class Ticket:
    """One queued entry; :meth:`Ledger.wait` or ``await`` gives its receipt once durable."""

    __slots__ = ("fields", "datasets", "receipt", "error", "waiter")

    def __init__(self, fields: dict[str, Any], datasets: list[str],
                 waiter: asyncio.Future[Receipt] | None = None) -> None:
        self.fields = fields
        self.datasets = datasets
        self.receipt: Receipt | None = None
        self.error: Exception | None = None
        self.waiter = waiter


def _settle(tickets: list[Ticket]) -> None:
    """Resolve the asyncio waiters of a batch (runs on their event loop)."""
    for t in tickets:
        w = t.waiter
        if w is not None and not w.done():
            if t.error is not None:
                w.set_exception(t.error)
            else:
                w.set_result(t.receipt)


def origin_of(city: City) -> str:
    """The ledger origin of a city's hub (``hub.origin``, or ``zhongshu/<city>``)."""
    return city.hub.origin or f"zhongshu/{city.info.name}"


def iso_ms(ms: int) -> str:
    """``2026-11-25T10:32:01.123Z``."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{ms % 1000:03d}Z"


class Ledger:
    """An append-only Merkle log in one SQLite file, signed by the hub's log key."""

    def __init__(self, store: LedgerStore, origin: str, log_key: note.Signer,
                 settings: LedgerSettings | None = None,
                 witness_key: note.Signer | None = None) -> None:
        self.store = store
        self.origin = origin
        self.log_key = log_key
        self.witness_key = witness_key
        self.settings = settings or LedgerSettings()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._frontier: merkle.Frontier | None = None
        self._committed = (0, merkle.EMPTY_ROOT)
        self._last_ms = 0
        self._closed = False
        self._wake = threading.Event()
        self._durable = threading.Condition()
        self._stop = threading.Event()
        self._sequencer = threading.Thread(target=self._run, name="ledger-sequencer",
                                           daemon=True)
        self._publisher = threading.Thread(target=self._publish_loop, name="ledger-publisher",
                                           daemon=True)
        self._witnesses = [(w, note.Verifier.parse(w.key)) for w in self.settings.witnesses]
        self.appended = 0
        self.commits = 0
        self._ckpt_size = 0

    @classmethod
    def open(cls, city: City, start: bool = True) -> Ledger:
        """The ledger of ``city``'s hub (``state/ledger.db``, keys ``state/ledger.key`` and
        ``state/witness.key``, created on first use), with its threads started."""
        origin = origin_of(city)
        state = city.state_dir
        ledger = cls(LedgerStore(state / "ledger.db"), origin,
                     note.Signer.load_or_create(state / "ledger.key", origin, note.ED25519),
                     city.ledger,
                     note.Signer.load_or_create(state / "witness.key", f"{origin}/witness",
                                                note.COSIGNATURE_V1))
        if start:
            ledger.start()
        return ledger

    # --- appending --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the sequencer and the checkpoint publisher."""
        self._sequencer.start()
        self._publisher.start()

    def append(self, fields: dict[str, Any], datasets: Sequence[str] = ()) -> Ticket:
        """Queue one entry (``wait`` on the ticket for its receipt).

        ``fields`` must be float-free JSON with ASCII keys (see :mod:`entry`); the ledger
        adds ``v``, ``log`` and ``time``. ``datasets`` index the entry for its owners'
        usage reports.
        """
        t = Ticket(fields, list(dict.fromkeys(datasets)))
        self._put(t)
        return t

    async def record_async(self, fields: dict[str, Any], datasets: Sequence[str] = ()
                           ) -> Receipt:
        """Append and wait, without blocking the event loop, until the entry is durable.

        Raises:
            LedgerUnavailable: the ledger is closed or could not write.
        """
        t = Ticket(fields, list(dict.fromkeys(datasets)),
                   asyncio.get_running_loop().create_future())
        self._put(t)
        assert t.waiter is not None
        return await t.waiter

    def record(self, fields: dict[str, Any], datasets: Sequence[str] = (),
               timeout: float = 30.0) -> Receipt:
        """Append and wait until durable (for callers that may block)."""
        return self.wait(self.append(fields, datasets), timeout)

    def wait(self, ticket: Ticket, timeout: float = 30.0) -> Receipt:
        """The ticket's receipt, once its entry is durable.

        Raises:
            LedgerUnavailable: the ledger could not write it, or not within ``timeout``.
        """
        with self._durable:
            if not self._durable.wait_for(
                    lambda: ticket.receipt is not None or ticket.error is not None, timeout):
                raise LedgerUnavailable("the ledger did not record in time; try again")
        if ticket.error is not None:
            raise ticket.error
        assert ticket.receipt is not None
        return ticket.receipt

    def _put(self, t: Ticket) -> None:
        if self._closed:
            t.error = LedgerUnavailable("the ledger is closed; nothing is recorded")
            if t.waiter is not None:
                t.waiter.set_exception(t.error)
            return
        self._queue.put(t)

    def append_now(self, fields: dict[str, Any], datasets: list[str] = ()) -> Receipt:
        """Append one entry on the calling thread, durable on return (for the CLI, which
        records a governance change while the hub may be running: the file lock orders
        the two writers)."""
        t = Ticket(fields, list(datasets))
        self._commit([t])
        assert t.receipt is not None
        return t.receipt

    def change_recorder(self) -> Any:
        """A metadata-store ``on_change`` hook that records each governance change."""
        def record(actor: str, action: str, subject: str, details: dict[str, Any]) -> None:
            fields = entry.change(actor, action, {"subject": subject, **details})
            named = details.get("datasets") or details.get("dataset") or []
            datasets = [named] if isinstance(named, str) else [str(d) for d in named]
            if self._sequencer.is_alive():
                self.record(fields, datasets)
            else:
                self.append_now(fields, datasets)
        return record

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self.settings.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            try:
                self._commit(batch)
            except Exception as e:  # the disk, not the caller: nothing is answered unrecorded
                self._frontier = None
                self.store.forget_edge()
                log.error("ledger append failed: %s", e)
                err = LedgerUnavailable("the ledger could not record this exchange; try again")
                for t in batch:
                    t.receipt, t.error = None, err
            self._notify(batch)

    def _notify(self, batch: list[Ticket]) -> None:
        loops: dict[asyncio.AbstractEventLoop, list[Ticket]] = {}
        sync = False
        for t in batch:
            if t.waiter is None:
                sync = True
            else:
                loops.setdefault(t.waiter.get_loop(), []).append(t)
        for loop, tickets in loops.items():  # one wake-up per loop and batch
            try:
                loop.call_soon_threadsafe(_settle, tickets)
            except RuntimeError:
                pass  # that loop has closed: nobody waits any more
        if sync:
            with self._durable:
                self._durable.notify_all()

    def _commit(self, batch: list[Ticket]) -> None:
        with self.store.write() as c:
            size = self.store.size(c)
            f = self._frontier
            if f is None or f.size != size:  # first batch, or another process appended
                self.store.forget_edge()
                f = merkle.Frontier.load(self.store.hash, size)
            now = max(int(time.time() * 1000), self._last_ms)
            stamp = iso_ms(now)
            rows, nodes, index = [], [], []
            origin, dumps, leaf_hash, append = (self.origin, canonical.dumps_plain,
                                                merkle.leaf_hash, f.append)
            for t in batch:
                fields = t.fields  # the ticket's own dict: stamped in place
                fields["v"], fields["log"], fields["time"] = VERSION, origin, stamp
                body = dumps(fields)
                leaf = leaf_hash(body)
                idx = f.size
                append(leaf, nodes)
                rows.append((idx, now, body))
                for d in t.datasets:
                    index.append((d, idx))
                t.receipt = Receipt(origin, idx, leaf)
            c.executemany("INSERT INTO entries VALUES (?, ?, ?)", rows)
            self.store.put_hashes(c, nodes)
            if index:
                c.executemany("INSERT INTO entry_datasets VALUES (?, ?)", index)
        self._frontier, self._last_ms = f, now
        self._committed = (f.size, f.root())
        self.appended += len(batch)
        self.commits += 1
        if f.size - self._ckpt_size >= self.settings.checkpoint_every:
            self._wake.set()

    # --- checkpoints ------------------------------------------------------------------------

    def _publish_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings.checkpoint_interval_s)
            self._wake.clear()
            try:
                self.publish()
            except Exception as e:
                log.error("checkpoint not published: %s", e)

    def publish(self) -> note.Checkpoint | None:
        """Sign a checkpoint of the log as it is now, if it grew, and ask the witnesses to
        cosign it. Returns the newest checkpoint.

        Raises:
            LedgerInvalid: the stored tree no longer matches a checkpoint signed before: the
                hub refuses to sign anything inconsistent with its own history.
        """
        size = self.store.size()
        last = self.store.latest_checkpoint()
        if size and (last is None or size > last[0]):
            root = merkle.root(self.store.hash, size)
            if last is not None and merkle.root(self.store.hash, last[0]) != last[1]:
                raise LedgerInvalid(f"the stored log no longer matches checkpoint {last[0]} "
                                    "this hub signed; refusing to sign (run `zhongshu ledger "
                                    "verify`)")
            b = note.body(self.origin, size, root)
            text = b + "\n" + self.log_key.sign_note(b)
            with self.store.write() as c:
                c.execute("INSERT OR IGNORE INTO checkpoints VALUES (?, ?, ?, ?)",
                          (size, root, int(time.time() * 1000), text))
            self._ckpt_size = size
        elif last is not None:
            self._ckpt_size = last[0]
        latest = self.checkpoint()
        if latest is not None:
            for peer, key in self._witnesses:
                try:
                    self._ask(peer, key, latest)
                except Exception as e:  # a witness down delays finality, never the log
                    log.warning("witness %s: %s", peer.name, e)
        return self.checkpoint()

    def _ask(self, peer: Any, key: note.Verifier, ckpt: note.Checkpoint) -> None:
        if ckpt.cosigned_by(key) is not None:
            return
        old = self.store.sent(peer.name)
        for _ in range(2):
            if old > ckpt.size:
                raise LedgerInvalid(f"witness {peer.name} has seen size {old}, larger than "
                                    f"this log's {ckpt.size}")
            proof = merkle.consistency_proof(self.store.hash, old, ckpt.size)
            body = f"old {old}\n" + "".join(
                note.b64(h) + "\n" for h in proof) + "\n" + ckpt.text
            r = httpx.post(peer.url.rstrip("/") + "/add-checkpoint", content=body.encode(),
                           timeout=5.0)
            if r.status_code == 409 and r.headers.get("content-type", "").startswith(
                    "text/x.tlog.size"):
                old = int(r.text.strip())
                continue
            if r.status_code != 200:
                raise LedgerInvalid(f"refused checkpoint {ckpt.size}: HTTP {r.status_code} "
                                    f"{r.text[:200]}")
            lines = [ln + "\n" for ln in r.text.split("\n") if ln]
            good = [ln for ln in lines if ckpt.with_signatures([ln]).cosigned_by(key)]
            if not good:
                raise LedgerInvalid("answered without a valid cosignature")
            self.store.add_cosignature(ckpt.size, peer.name, good[0])
            self.store.set_sent(peer.name, ckpt.size)
            return

    def checkpoint(self, size: int | None = None) -> note.Checkpoint | None:
        """The newest checkpoint (or the one of ``size``) with the cosignatures collected."""
        row = (self.store.latest_checkpoint() if size is None
               else next((c for c in self.store.checkpoints() if c[0] == size), None))
        if row is None:
            return None
        ckpt = note.parse_checkpoint(row[2])
        return ckpt.with_signatures(self.store.cosignatures(row[0]))

    def quorum(self) -> int:
        """Cosignatures needed for a checkpoint to be final."""
        return self.settings.quorum or len(self._witnesses)

    def final(self, ckpt: note.Checkpoint) -> bool:
        """Whether ``ckpt`` carries valid cosignatures of at least ``quorum`` witnesses."""
        good = sum(1 for _, k in self._witnesses if ckpt.cosigned_by(k) is not None)
        return good >= self.quorum()

    # --- reading ----------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Entries durable so far."""
        return self.store.size()

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """The audit path of entry ``index`` in the tree of ``size``."""
        return merkle.inclusion_proof(self.store.hash, index, size)

    def consistency(self, old: int, new: int) -> list[bytes]:
        """The proof that the tree of ``old`` is a prefix of the tree of ``new``."""
        return merkle.consistency_proof(self.store.hash, old, new)

    def close(self, timeout: float = 10.0) -> None:
        """Record what is queued, then stop (a last checkpoint covers it)."""
        if self._closed:
            return
        self._closed = True
        if self._sequencer.is_alive():
            self._queue.put(None)
            self._sequencer.join(timeout)
        self._stop.set()
        self._wake.set()
        if self._publisher.is_alive():
            self._publisher.join(timeout)
        try:
            self.publish()
            self.store.close()
        except Exception as e:
            log.warning("last checkpoint not published: %s", e)
