"""The hub's ledger: a sequencer process appending batches, a publisher thread signing
checkpoints and asking witnesses to cosign them.

An answer awaits :meth:`Ledger.record_async`, which resolves once the entry is committed
and fsynced, so nothing is answered before its entry is durable. Entries recorded in the
same turn of the event loop travel to the sequencer together, and whatever queues while
the sequencer commits goes into its next transaction (group commit).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import httpx

from zhongshu.config import City, LedgerSettings
from zhongshu.errors import LedgerInvalid, LedgerUnavailable
from zhongshu.ledger import entry, merkle, note, sequencer
from zhongshu.ledger.sequencer import iso_ms
from zhongshu.ledger.store import LedgerStore

log = logging.getLogger("zhongshu.ledger")
__all__ = ["Ledger", "Receipt", "iso_ms", "origin_of"]


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


def origin_of(city: City) -> str:
    """The ledger origin of a city's hub (``hub.origin``, or ``zhongshu/<city>``)."""
    return city.hub.origin or f"zhongshu/{city.info.name}"


_UNAVAILABLE = "the ledger could not record this exchange; try again"
SEND_AT_ONCE = 1024


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
        self._local = sequencer.Sequencer(store, origin)  # in-process appends (CLI, threads)
        self._local_lock = threading.Lock()
        self._proc: Any = None
        self._conn: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outbox: list[tuple[dict[str, Any], list[str], asyncio.Future[Receipt]]] = []
        self._sent: dict[int, list[asyncio.Future[Receipt]]] = {}
        self._last_ms = 0
        self._next_id = 0
        self._closed = False
        self._dead = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._publisher = threading.Thread(target=self._publish_loop, name="ledger-publisher",
                                           daemon=True)
        self._witnesses = [(w, note.Verifier.parse(w.key)) for w in self.settings.witnesses]
        self._ckpt_size = 0
        self.appended = 0
        self.batches = 0

    @classmethod
    def open(cls, city: City, start: bool = True) -> Ledger:
        """The ledger of ``city``'s hub (``state/ledger.db``, keys ``state/ledger.key`` and
        ``state/witness.key``, created on first use); ``start`` also starts the sequencer
        process and the checkpoint publisher."""
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
        """Start the sequencer process and the checkpoint publisher."""
        self._spawn()
        self._publisher.start()

    def _spawn(self) -> None:
        mine, theirs = socket.socketpair()
        proc = multiprocessing.get_context("spawn").Process(
            target=sequencer.main, name="zhongshu-ledger-sequencer",
            args=(theirs, str(self.store.path), self.origin, self.settings.max_batch),
            daemon=True)
        proc.start()
        theirs.close()
        mine.setblocking(False)  # the event loop never waits on the sequencer
        self._proc, self._conn = proc, mine
        self._inbuf, self._outbuf, self._writing = bytearray(), bytearray(), False

    async def record_async(self, fields: dict[str, Any], datasets: Sequence[str] = ()
                           ) -> Receipt:
        """Append one entry and wait, without blocking the event loop, until it is durable.

        ``fields`` must be float-free JSON with ASCII keys (see :mod:`entry`); the ledger
        adds ``v``, ``log`` and ``time``. ``datasets`` index the entry for its owners'
        usage reports.

        Raises:
            LedgerUnavailable: the ledger is closed or could not write.
        """
        if self._closed:
            raise LedgerUnavailable("the ledger is closed; nothing is recorded")
        loop = asyncio.get_running_loop()
        if self._proc is None:  # not started: append on a worker thread
            return await asyncio.to_thread(self.append_now, fields, datasets)
        if self._loop is None or self._loop.is_closed():
            self._loop = loop
            loop.add_reader(self._conn.fileno(), self._on_reply)
        elif loop is not self._loop:  # another event loop: hand over to the sequencer's
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
                self.record_async(fields, datasets), self._loop))
        fut: asyncio.Future[Receipt] = loop.create_future()
        self._outbox.append((fields, list(dict.fromkeys(datasets)), fut))
        if len(self._outbox) == 1:
            loop.call_soon(self._flush)
        return await fut

    def _flush(self) -> None:
        # at most SEND_AT_ONCE entries a message, the rest on the next turn of the loop: the
        # sequencer commits one part while the hub stamps the next (a pipeline, not lockstep)
        batch, self._outbox = self._outbox[:SEND_AT_ONCE], self._outbox[SEND_AT_ONCE:]
        if self._outbox:
            assert self._loop is not None
            self._loop.call_soon(self._flush)
        if not batch:
            return
        if self._dead or not self._proc.is_alive():
            self._restart()
        bid = self._next_id
        self._next_id += 1
        now = self._last_ms = max(int(time.time() * 1000), self._last_ms)
        iso = iso_ms(now)
        bodies, futs = [], []
        for f, d, fut in batch:
            try:
                bodies.append((sequencer.stamp(f, self.origin, iso), d))
            except (TypeError, ValueError) as e:  # a caller's bug must not stall the others
                log.error("ledger entry not serialisable: %s", e)
                fut.set_exception(LedgerUnavailable(_UNAVAILABLE))
                continue
            futs.append(fut)
        if not futs:
            return
        self._sent[bid] = futs
        self._outbuf += sequencer.request(bid, now, bodies)
        self._pump()

    def _pump(self) -> None:
        """Send what is buffered without blocking; the loop calls again when writable."""
        assert self._loop is not None
        try:
            while self._outbuf:
                n = self._conn.send(self._outbuf)
                del self._outbuf[:n]
        except BlockingIOError:
            pass
        except OSError:
            self._outbuf.clear()
            self._died()
            return
        if self._outbuf and not self._writing:
            self._loop.add_writer(self._conn.fileno(), self._pump)
            self._writing = True
        elif not self._outbuf and self._writing:
            self._loop.remove_writer(self._conn.fileno())
            self._writing = False

    def _restart(self) -> None:
        log.error("the ledger sequencer stopped; starting it again")
        if self._loop is not None and self._conn is not None:
            self._loop.remove_reader(self._conn.fileno())
            self._loop.remove_writer(self._conn.fileno())
            self._conn.close()
        for bid in list(self._sent):
            self._fail(bid)
        self._spawn()
        self._dead = False
        if self._loop is not None:
            self._loop.add_reader(self._conn.fileno(), self._on_reply)

    def _fail(self, bid: int) -> None:
        for fut in self._sent.pop(bid, []):
            if not fut.done():
                fut.set_exception(LedgerUnavailable(_UNAVAILABLE))

    def _on_reply(self) -> None:
        try:
            while True:
                data = self._conn.recv(1 << 20)
                if not data:
                    self._died()
                    return
                self._inbuf += data
        except BlockingIOError:
            pass
        except OSError:
            self._died()
            return
        for msg in sequencer.frames(self._inbuf):
            bid, first, count, leaves = sequencer.answer(msg)
            sent = self._sent.pop(bid, [])
            self.batches += 1
            if first < 0 or count != len(sent) or len(leaves) != 32 * count:
                for fut in sent:
                    if not fut.done():
                        fut.set_exception(LedgerUnavailable(_UNAVAILABLE))
                continue
            origin = self.origin
            for i, fut in enumerate(sent):
                if not fut.done():
                    fut.set_result(Receipt(origin, first + i, leaves[32 * i:32 * i + 32]))
            self.appended += count
            if first + count - self._ckpt_size >= self.settings.checkpoint_every:
                self._wake.set()

    def _died(self) -> None:
        """The sequencer is gone: what it did not answer failed; the next batch restarts it."""
        assert self._loop is not None
        self._loop.remove_reader(self._conn.fileno())
        if self._writing:
            self._loop.remove_writer(self._conn.fileno())
            self._writing = False
        for bid in list(self._sent):
            self._fail(bid)
        self._dead = True

    def _detach(self) -> None:
        """Stop the event loop watching the sequencer's socket (from any thread)."""
        loop, fd = self._loop, self._conn.fileno()
        if loop is None or loop.is_closed():
            return
        done = threading.Event()

        def detach() -> None:
            loop.remove_reader(fd)
            loop.remove_writer(fd)
            done.set()

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop or not loop.is_running():
            detach()
            return
        try:
            loop.call_soon_threadsafe(detach)
        except RuntimeError:
            return
        done.wait(2)

    def record(self, fields: dict[str, Any], datasets: Sequence[str] = ()) -> Receipt:
        """Append on the calling thread and return once durable (governance changes, the
        CLI). SQLite's write lock orders this with the sequencer process."""
        return self.append_now(fields, datasets)

    def append_now(self, fields: dict[str, Any], datasets: Sequence[str] = ()) -> Receipt:
        """Append one entry in this process, durable on return."""
        if self._closed:
            raise LedgerUnavailable("the ledger is closed; nothing is recorded")
        with self._local_lock:
            try:
                ((idx, leaf),) = self._local.commit([(fields, list(dict.fromkeys(datasets)))])
            except Exception as e:
                log.error("ledger append failed: %s", e)
                raise LedgerUnavailable(_UNAVAILABLE) from None
        return Receipt(self.origin, idx, leaf)

    def change_recorder(self) -> Any:
        """A metadata-store ``on_change`` hook that records each governance change."""
        def record(actor: str, action: str, subject: str, details: dict[str, Any]) -> None:
            fields = entry.change(actor, action, {"subject": subject, **details})
            named = details.get("datasets") or details.get("dataset") or []
            datasets = [named] if isinstance(named, str) else [str(d) for d in named]
            self.append_now(fields, datasets)
        return record

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

    def cosigners(self, ckpt: note.Checkpoint) -> list[str]:
        """The configured witnesses whose valid cosignature ``ckpt`` carries."""
        return [p.name for p, k in self._witnesses if ckpt.cosigned_by(k) is not None]

    def final(self, ckpt: note.Checkpoint) -> bool:
        """Whether ``ckpt`` carries valid cosignatures of at least ``quorum`` witnesses."""
        return len(self.cosigners(ckpt)) >= self.quorum()

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
        """Wait for what was sent to the sequencer, stop it, and sign a last checkpoint."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        while self._sent and time.monotonic() < deadline:
            time.sleep(0.01)  # replies are read by the event loop, which still runs
        if self._conn is not None:
            self._detach()
            self._conn.close()
        if self._proc is not None:
            self._proc.join(timeout)
            if self._proc.is_alive():
                self._proc.terminate()
        self._stop.set()
        self._wake.set()
        if self._publisher.is_alive():
            self._publisher.join(timeout)
        try:
            self.publish()
            self.store.close()
        except Exception as e:
            log.warning("last checkpoint not published: %s", e)
