"""Publishing: signing checkpoints of the log on a thread of their own.

A checkpoint is signed at most every ``checkpoint_interval_s`` when the log grew, or as soon
as ``checkpoint_every`` entries are not in one yet; each new checkpoint is then offered to the
witnesses. Before signing (and when the hub starts), the stored tree is checked against the
last checkpoint signed: the hub never signs anything inconsistent with its own history, and
while it cannot sign (:attr:`Publisher.fault`) the ledger records nothing, so the hub hands out
no receipt that no checkpoint will cover.

Where several replicas share one log (PostgreSQL), only the holder of the sequencer's lease
signs (:attr:`Publisher.leads`); the others check the stored tree against the checkpoints
the holder signs, as before signing, and serve them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from zhongshu.config import LedgerSettings
from zhongshu.errors import LedgerInvalid
from zhongshu.ledger import merkle, note
from zhongshu.ledger.store import LedgerStore, StoredCheckpoint
from zhongshu.ledger.witness_client import WitnessClient

log = logging.getLogger("zhongshu.ledger")
__all__ = ["Publisher"]


class Publisher:
    """Signs checkpoints of one log with its log key and has them cosigned."""

    def __init__(self, store: LedgerStore, origin: str, log_key: note.Signer,
                 settings: LedgerSettings, witnesses: WitnessClient) -> None:
        self.store = store
        self.origin = origin
        self.log_key = log_key
        self.settings = settings
        self.witnesses = witnesses
        self._signed = 0  # the size of the newest checkpoint signed
        self.fault: str | None = None  # why the log cannot be signed now (no path, no host)
        self.covered_at: float | None = None  # when the log was last shown covered (Unix s)
        self.refusals = 0  # times this hub refused or failed to sign
        #: whether this process may sign now (None: always; a replica: while it holds the
        #: sequencer's lease)
        self.leads: Callable[[], bool] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ledger-publisher",
                                        daemon=True)

    def start(self) -> None:
        """Start publishing on the publisher's thread."""
        self._thread.start()

    def grew(self, size: int) -> None:
        """The log now has ``size`` entries: publish early if enough wait for a checkpoint."""
        if size - self._signed >= self.settings.checkpoint_every:
            self._wake.set()

    def _loop(self) -> None:
        said = ""  # a fault is logged when it starts, not once a second while it lasts
        while not self._stop.is_set():
            self._wake.wait(self.settings.checkpoint_interval_s)
            self._wake.clear()
            try:
                self.publish()
                if said:
                    log.warning("checkpoints are signed again")
                said = ""
            except Exception as e:
                if str(e) != said:
                    log.error("checkpoint not published: %s", e)
                said = str(e)

    def publish(self) -> note.Checkpoint | None:
        """Sign a checkpoint of the log as it is now, if it grew, and ask the witnesses to
        cosign it. Returns the newest checkpoint.

        Raises:
            LedgerInvalid: the stored tree no longer matches a checkpoint signed before: the
                hub refuses to sign anything inconsistent with its own history.
        """
        last = self.check()
        size = self.store.size()
        if self.leads is not None and not self.leads():  # another replica signs
            self.fault = None
            if last is not None:
                self._signed = last.size
                self.covered_at = time.time()
            return self.checkpoint()
        if size and (last is None or size > last.size):
            try:
                root = merkle.root(self.store.hash, size)
                b = note.body(self.origin, size, root)
                self.store.add_checkpoint(size, root, int(time.time() * 1000),
                                          b + "\n" + self.log_key.sign_note(b))
            except Exception:
                self.fault = "its checkpoints cannot be signed or stored"
                self.refusals += 1
                raise
            self._signed = size
        elif last is not None:
            self._signed = last.size
        self.fault = None
        self.covered_at = time.time()
        latest = self.checkpoint()
        if latest is not None:
            self.witnesses.ask_all(latest)
        return self.checkpoint()

    def check(self) -> StoredCheckpoint | None:
        """The newest checkpoint signed, once the stored tree is shown to still match it
        (at start, and before each signature).

        Raises:
            LedgerInvalid: it does not: the log was altered under the hub, which refuses to
                sign — and, through :attr:`fault`, to record — anything more.
        """
        last = self.store.latest_checkpoint()
        if last is not None and merkle.root(self.store.hash, last.size) != last.root:
            self.fault = "the stored log no longer matches a checkpoint it signed"
            self.refusals += 1
            raise LedgerInvalid(f"the stored log no longer matches checkpoint {last.size} "
                                "this hub signed; refusing to sign or record (run `zhongshu "
                                "ledger verify`)")
        return last

    def checkpoint(self, size: int | None = None) -> note.Checkpoint | None:
        """The newest checkpoint (or the one of ``size``) with the cosignatures collected."""
        row = self.store.latest_checkpoint() if size is None else self.store.checkpoint_at(size)
        if row is None:
            return None
        ckpt = note.parse_checkpoint(row.note)
        return ckpt.with_signatures(self.store.cosignatures(row.size))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread (after the checkpoint it may be signing)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
