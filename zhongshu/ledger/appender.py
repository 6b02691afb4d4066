"""Appending: entries handed to the sequencer process, answered once durable.

An answer awaits :meth:`Appender.record_async`, which resolves once the entry is committed
and fsynced, so nothing is answered before its entry is durable. Entries recorded in the
same turn of the event loop travel to the sequencer together, and whatever queues while
the sequencer commits goes into its next transaction (group commit). Before
:meth:`Appender.start` — and on a store no other process can open, such as the in-memory
one — entries are appended in this process instead, one transaction each.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import socket
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess
from typing import Any

from zhongshu.errors import LedgerUnavailable
from zhongshu.ledger import sequencer
from zhongshu.ledger.entry import iso_ms, stamp
from zhongshu.ledger.receipt import Receipt
from zhongshu.ledger.store import LedgerStore

log = logging.getLogger("zhongshu.ledger")
__all__ = ["SEND_AT_ONCE", "Appender"]

UNAVAILABLE = "the ledger could not record this exchange; try again"
SEND_AT_ONCE = 1024
_Waiting = tuple[dict[str, Any], list[str], "asyncio.Future[Receipt]"]


class Appender:
    """The one way entries get into a ledger store, from the event loop or any thread.

    ``grown`` is called (on the event loop) with the log's size after each batch the
    sequencer process committed.
    """

    def __init__(self, store: LedgerStore, origin: str, max_batch: int,
                 grown: Callable[[int], None] = lambda size: None,
                 blocked: Callable[[], str | None] = lambda: None) -> None:
        self.store = store
        self.origin = origin
        self.max_batch = max_batch
        self._grown = grown
        self._blocked = blocked  # why nothing may be appended now (the log cannot be signed)
        self._local = sequencer.Sequencer(store, origin)  # in-process appends (CLI, threads)
        self._local_lock = threading.Lock()
        self._proc: BaseProcess | None = None
        self._conn: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outbox: list[_Waiting] = []
        self._sent: dict[int, list[asyncio.Future[Receipt]]] = {}
        self._inbuf = bytearray()
        self._outbuf = bytearray()
        self._writing = False
        self._last_ms = 0
        self._next_id = 0
        self._closed = False
        self._dead = False
        self.appended = 0  # entries the sequencer process committed
        self.batches = 0  # answers it sent
        #: the last append failed (its store did not answer): the hub says it is unready
        #: until an append succeeds or the store answers again (``Ledger.unready``)
        self.failing = False

    def start(self) -> None:
        """Start the sequencer process, when the store is one it can open (a file, a
        database); otherwise keep appending in this process."""
        if sequencer.location(self.store) is not None:
            self._spawn()

    def _spawn(self) -> None:
        where = sequencer.location(self.store)
        assert where is not None
        mine, theirs = socket.socketpair()
        proc = multiprocessing.get_context("spawn").Process(  # args travel by pipe, not argv
            target=sequencer.main, name="zhongshu-ledger-sequencer",
            args=(theirs, where, self.origin, self.max_batch), daemon=True)
        proc.start()
        theirs.close()
        mine.setblocking(False)  # the event loop never waits on the sequencer
        self._proc, self._conn = proc, mine
        self._inbuf, self._outbuf, self._writing = bytearray(), bytearray(), False

    def _check_open(self) -> None:
        """Refuse an append no checkpoint could cover: closed, or the log cannot be signed.

        Raises:
            LedgerUnavailable: the ledger is closed or blocked (its reason, without paths).
        """
        if self._closed:
            raise LedgerUnavailable("the ledger is closed; nothing is recorded")
        reason = self._blocked()
        if reason is not None:
            raise LedgerUnavailable(f"the hub cannot record now ({reason}), so it does not "
                                    "answer; its operator has been told")

    # --- from the event loop ----------------------------------------------------------------

    async def record_async(self, fields: dict[str, Any], datasets: Sequence[str] = ()
                           ) -> Receipt:
        """Append one entry and wait, without blocking the event loop, until it is durable.

        ``fields`` must be float-free JSON with ASCII keys (see :mod:`entry`); the ledger
        adds ``v``, ``log`` and ``time``. ``datasets`` index the entry for its owners'
        usage reports.

        Raises:
            LedgerUnavailable: the ledger is closed or could not write.
        """
        self._check_open()
        loop = asyncio.get_running_loop()
        if self._proc is None or self._conn is None:  # no sequencer process: a worker thread
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
        assert self._loop is not None and self._proc is not None
        batch, self._outbox = self._outbox[:SEND_AT_ONCE], self._outbox[SEND_AT_ONCE:]
        if self._outbox:
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
                bodies.append((stamp(f, self.origin, iso), d))
            except (TypeError, ValueError) as e:  # a caller's bug must not stall the others
                log.error("ledger entry not serialisable: %s", e)
                fut.set_exception(LedgerUnavailable(UNAVAILABLE))
                continue
            futs.append(fut)
        if not futs:
            return
        self._sent[bid] = futs
        self._outbuf += sequencer.request(bid, now, bodies)
        self._pump()

    def _pump(self) -> None:
        """Send what is buffered without blocking; the loop calls again when writable."""
        assert self._loop is not None and self._conn is not None
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
        if self._loop is not None and self._conn is not None:
            self._loop.add_reader(self._conn.fileno(), self._on_reply)

    def _fail(self, bid: int) -> None:
        for fut in self._sent.pop(bid, []):
            if not fut.done():
                fut.set_exception(LedgerUnavailable(UNAVAILABLE))

    def _on_reply(self) -> None:
        assert self._conn is not None
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
                self.failing = True
                for fut in sent:
                    if not fut.done():
                        fut.set_exception(LedgerUnavailable(UNAVAILABLE))
                continue
            self.failing = False
            origin = self.origin
            for i, fut in enumerate(sent):
                if not fut.done():
                    fut.set_result(Receipt(origin, first + i, leaves[32 * i:32 * i + 32]))
            self.appended += count
            self._grown(first + count)

    def _died(self) -> None:
        """The sequencer is gone: what it did not answer failed; the next batch restarts it."""
        assert self._loop is not None and self._conn is not None
        self._loop.remove_reader(self._conn.fileno())
        if self._writing:
            self._loop.remove_writer(self._conn.fileno())
            self._writing = False
        for bid in list(self._sent):
            self._fail(bid)
        self._dead = True

    def _detach(self) -> None:
        """Stop the event loop watching the sequencer's socket (from any thread)."""
        assert self._conn is not None
        loop, fd = self._loop, self._conn.fileno()
        if loop is None or loop.is_closed():
            return
        done = threading.Event()

        def detach() -> None:
            loop.remove_reader(fd)
            loop.remove_writer(fd)
            done.set()

        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
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

    # --- from any thread --------------------------------------------------------------------

    def append_now(self, fields: dict[str, Any], datasets: Sequence[str] = ()) -> Receipt:
        """Append one entry in this process, durable on return. The store's write lock
        orders this with the sequencer process.

        Raises:
            LedgerUnavailable: the ledger is closed or could not write.
        """
        self._check_open()
        with self._local_lock:
            try:
                ((idx, leaf),) = self._local.commit([(fields, list(dict.fromkeys(datasets)))])
            except Exception as e:
                log.error("ledger append failed: %s", e)
                self.failing = True
                raise LedgerUnavailable(UNAVAILABLE) from None
        self.failing = False
        return Receipt(self.origin, idx, leaf)

    @property
    def process(self) -> BaseProcess | None:
        """The sequencer process, once started."""
        return self._proc

    def close(self, timeout: float = 10.0) -> None:
        """Refuse new entries, wait for what was sent to the sequencer, and stop it."""
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

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed
