"""The hub's ledger: one object over the parts that keep it.

:class:`Ledger` composes a :class:`~zhongshu.ledger.store.LedgerStore` (what is kept), an
:class:`~zhongshu.ledger.appender.Appender` (entries in, durable before any answer), a
:class:`~zhongshu.ledger.publisher.Publisher` (signed checkpoints) and a
:class:`~zhongshu.ledger.witness_client.WitnessClient` (cosignatures, finality), and serves
proofs and the reads the protocol's ledger endpoints need.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from zhongshu.config import City, LedgerSettings
from zhongshu.errors import LedgerInvalid
from zhongshu.ledger import entry, merkle, note, pin
from zhongshu.ledger.appender import Appender
from zhongshu.ledger.entry import iso_ms
from zhongshu.ledger.publisher import Publisher
from zhongshu.ledger.receipt import Receipt
from zhongshu.ledger.store import LedgerStore, SqliteLedgerStore
from zhongshu.ledger.witness import Witness
from zhongshu.ledger.witness_client import WitnessClient

log = logging.getLogger("zhongshu.ledger")
__all__ = ["Ledger", "Receipt", "iso_ms", "origin_of"]

ChangeHook = Callable[[str, str, str, dict[str, Any]], None]


def origin_of(city: City) -> str:
    """The ledger origin of a city's hub (``hub.origin``, or ``zhongshu/<city>``)."""
    return city.hub.origin or f"zhongshu/{city.info.name}"


class Ledger:
    """An append-only Merkle log in a store, signed by the hub's log key."""

    def __init__(self, store: LedgerStore, origin: str, log_key: note.Signer,
                 settings: LedgerSettings | None = None,
                 witness_key: note.Signer | None = None) -> None:
        self.store = store
        self.origin = origin
        self.log_key = log_key
        self.witness_key = witness_key
        self.settings = settings or LedgerSettings()
        self.witnesses = WitnessClient(store, self.settings.witnesses, self.settings.quorum)
        self.publisher = Publisher(store, origin, log_key, self.settings, self.witnesses)
        self.appender = Appender(store, origin, self.settings.max_batch, self.publisher.grew,
                                 lambda: self.publisher.fault)
        self._lease: Any = None  # the sequencer's lease, on a log shared by replicas

    @classmethod
    def open(cls, city: City, start: bool = True, store: LedgerStore | None = None) -> Ledger:
        """The ledger of ``city``'s hub (in ``store``, default ``state/ledger.db``; keys
        ``state/ledger.key`` and ``state/witness.key``, created on first use); ``start``
        also starts the sequencer process and the checkpoint publisher.

        A log key created here is pinned in ``ledger.pin`` beside ``city.toml``
        (:mod:`~zhongshu.ledger.pin`).

        Raises:
            LedgerInvalid: the log key is not the one the city pins.
        """
        origin = origin_of(city)
        state = city.state_dir
        log_key = cls._log_signer(city)
        ledger = cls(store or SqliteLedgerStore(state / "ledger.db"), origin, log_key,
                     city.ledger,
                     note.Signer.load_or_create(state / "witness.key", f"{origin}/witness",
                                                note.COSIGNATURE_V1))
        if start:
            ledger.start()
        return ledger

    @staticmethod
    def _log_signer(city: City) -> note.Signer:
        origin = origin_of(city)
        state = city.state_dir
        created = not (state / "ledger.key").exists()
        log_key = note.Signer.load_or_create(state / "ledger.key", origin, note.ED25519)
        pin.settle(city, log_key.verifier, created)
        return log_key

    @classmethod
    def city_log_key(cls, city: City) -> note.Verifier:
        """The public key of ``city``'s log — created, and pinned, as at the hub's first start
        when it has none yet (what a witness of this hub must be told).

        Raises:
            LedgerInvalid: the log key is not the one the city pins.
        """
        return cls._log_signer(city).verifier

    def start(self) -> None:
        """Check the stored tree against the last checkpoint signed, then start the sequencer
        process (for a store in a file) and the checkpoint publisher. A tree that no longer
        matches leaves the hub up but unready: :meth:`unready` says so, and nothing is
        recorded (so no data is answered) until it is repaired."""
        try:
            self.publisher.check()
        except LedgerInvalid as e:
            log.error("%s", e)
        self._lead()
        self.appender.start()
        self.publisher.start()

    def _lead(self) -> None:
        """On a log shared by replicas (a store in PostgreSQL), contend for the sequencer's
        lease: only its holder signs checkpoints (:mod:`~zhongshu.ledger.lease`)."""
        from zhongshu.ledger.sequencer import location

        where = location(self.store)
        if where is None or where[0] != "postgresql":
            return
        from zhongshu.ledger.lease import Lease

        lease, lock = Lease(where[1]), threading.Lock()
        self._lease = lease

        def leads() -> bool:
            with lock:
                try:
                    return lease.try_take()
                except Exception as e:  # the database is away: not leading, said once a try
                    log.warning("the sequencer's lease cannot be checked: %s",
                                type(e).__name__)
                    return False

        self.publisher.leads = leads

    @property
    def leading(self) -> bool:
        """Whether this process signs the log's checkpoints (always, but for a replica that
        does not hold the sequencer's lease)."""
        return self.publisher.leads is None or self.publisher.leads()

    def unready(self) -> str | None:
        """Why this ledger cannot record and sign now (a phrase without paths, hosts or
        names), or None when it can."""
        if self.appender.closed:
            return "the ledger is closed"
        if self.appender.failing:  # until an append succeeds, or the store answers again
            try:
                self.store.size()
            except Exception:
                return "its appends fail: the ledger's store does not answer"
            self.appender.failing = False
        return self.publisher.fault

    def health(self) -> dict[str, Any]:
        """The ledger's guarantees as its operator checks them — states, counts and seconds,
        never a path, host, key or witness address: ``recording`` and ``signing`` (``ok`` or
        why not), ``size``, ``checkpoint_size``, ``checkpoint_age_s`` (since the log was last
        shown covered by a signed checkpoint; None before the first time), ``cosigned``
        (witnesses whose cosignature the newest checkpoint carries), ``quorum``,
        ``finality`` (see :meth:`WitnessClient.finality
        <zhongshu.ledger.witness_client.WitnessClient.finality>`), ``refused_to_sign`` and
        ``witnesses`` (name → last outcome); on a log shared by replicas, ``sequencer``:
        ``leading`` (this replica holds the lease and signs) or ``following``."""
        pub = self.publisher
        unready = self.unready()
        try:
            latest, size = self.checkpoint(), self.size
        except Exception:  # a store that cannot be read: the log says why, not the health
            log.exception("ledger health: the store cannot be read")
            latest, size, unready = None, 0, unready or "the ledger cannot be read"
        return {"recording": unready or "ok", "signing": pub.fault or "ok",
                "size": size, "checkpoint_size": latest.size if latest else 0,
                "checkpoint_age_s": None if pub.covered_at is None
                else round(max(0.0, time.time() - pub.covered_at), 1),
                "cosigned": len(self.cosigners(latest)) if latest else 0,
                "quorum": self.quorum(), "finality": self.witnesses.finality(latest),
                "refused_to_sign": pub.refusals,
                "witnesses": {n: o.state for n, o in sorted(self.witnesses.outcomes().items())},
                **({} if pub.leads is None
                   else {"sequencer": "leading" if pub.leads() else "following"})}

    @staticmethod
    def lost(health: dict[str, Any]) -> list[str]:
        """The guarantees a :meth:`health` report shows lost: ``recording`` (nothing is
        answered), ``finality`` (checkpoints stop becoming final)."""
        out = []
        if health["recording"] != "ok" or health["signing"] != "ok":
            out.append("recording")
        if health["finality"] == "lost":
            out.append("finality")
        return out

    # --- appending --------------------------------------------------------------------------

    async def record_async(self, fields: dict[str, Any], datasets: Sequence[str] = ()
                           ) -> Receipt:
        """Append one entry and wait, without blocking the event loop, until it is durable
        (see :meth:`Appender.record_async <zhongshu.ledger.appender.Appender.record_async>`).

        Raises:
            LedgerUnavailable: the ledger is closed or could not write.
        """
        return await self.appender.record_async(fields, datasets)

    def record(self, fields: dict[str, Any], datasets: Sequence[str] = ()) -> Receipt:
        """Append on the calling thread and return once durable (governance changes, the
        CLI). The store's write lock orders this with the sequencer process.

        Raises:
            LedgerUnavailable: the ledger is closed or could not write.
        """
        return self.appender.append_now(fields, datasets)

    def append_now(self, fields: dict[str, Any], datasets: Sequence[str] = ()) -> Receipt:
        """Append one entry in this process, durable on return.

        Raises:
            LedgerUnavailable: the ledger is closed or could not write.
        """
        return self.appender.append_now(fields, datasets)

    def change_recorder(self) -> ChangeHook:
        """A metadata-store ``on_change`` hook that records each governance change."""
        def record(actor: str, action: str, subject: str, details: dict[str, Any]) -> None:
            fields = entry.change(actor, action, {"subject": subject, **details})
            named = details.get("datasets") or details.get("dataset") or []
            datasets = [named] if isinstance(named, str) else [str(d) for d in named]
            self.append_now(fields, datasets)
        return record

    @property
    def appended(self) -> int:
        """Entries the sequencer process committed."""
        return self.appender.appended

    @property
    def batches(self) -> int:
        """Batches the sequencer process answered."""
        return self.appender.batches

    # --- checkpoints ------------------------------------------------------------------------

    def publish(self) -> note.Checkpoint | None:
        """Sign a checkpoint if the log grew and ask the witnesses to cosign it; the newest
        checkpoint.

        Raises:
            LedgerInvalid: the stored tree no longer matches a checkpoint signed before.
        """
        return self.publisher.publish()

    def checkpoint(self, size: int | None = None) -> note.Checkpoint | None:
        """The newest checkpoint (or the one of ``size``) with the cosignatures collected."""
        return self.publisher.checkpoint(size)

    def checkpoints(self) -> list[note.Checkpoint]:
        """Every checkpoint signed, oldest first, with the cosignatures collected."""
        out = []
        for row in self.store.checkpoints():
            out.append(note.parse_checkpoint(row.note).with_signatures(
                self.store.cosignatures(row.size)))
        return out

    def checkpoint_covering(self, index: int) -> note.Checkpoint | None:
        """The first checkpoint that includes entry ``index`` (with its cosignatures), or
        None while no checkpoint does."""
        row = self.store.checkpoint_covering(index)
        return None if row is None else self.checkpoint(row.size)

    def quorum(self) -> int:
        """Cosignatures needed for a checkpoint to be final."""
        return self.witnesses.quorum()

    def cosigners(self, ckpt: note.Checkpoint) -> list[str]:
        """The configured witnesses whose valid cosignature ``ckpt`` carries."""
        return self.witnesses.cosigners(ckpt)

    def final(self, ckpt: note.Checkpoint) -> bool:
        """Whether ``ckpt`` carries valid cosignatures of at least ``quorum`` witnesses."""
        return self.witnesses.final(ckpt)

    # --- reading ----------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Entries durable so far."""
        return self.store.size()

    def entry(self, index: int) -> bytes | None:
        """Entry ``index``'s canonical bytes, or None if there is none."""
        return self.store.entry(index) if index >= 0 else None

    def tile(self, level: int, n: int) -> bytes:
        """The hashes of level ``level`` from ``256n`` on (up to 256), back to back."""
        return self.store.tile(level, n)

    def first_since(self, time_ms: int) -> int:
        """The first index recorded at or after ``time_ms``."""
        return self.store.first_since(time_ms)

    def reading(self, dataset: str, since: int = 0) -> list[int]:
        """Indices of entries naming ``dataset``, from ``since``."""
        return self.store.reading(dataset, since)

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """The audit path of entry ``index`` in the tree of ``size``."""
        return merkle.inclusion_proof(self.store.hash, index, size)

    def consistency(self, old: int, new: int) -> list[bytes]:
        """The proof that the tree of ``old`` is a prefix of the tree of ``new``."""
        return merkle.consistency_proof(self.store.hash, old, new)

    # --- as a witness of other logs ---------------------------------------------------------

    def witness(self, logs: dict[str, note.Verifier]) -> Witness | None:
        """This hub as witness of ``logs`` (origin → log key), its state kept in this
        ledger's store; None without a witness key."""
        if self.witness_key is None:
            return None
        return Witness(self.store, self.witness_key, logs)

    def evidence(self) -> list[dict[str, object]]:
        """Evidence this hub, as a witness, kept of logs that misbehaved, newest first."""
        return self.store.evidence()

    def close(self, timeout: float = 10.0) -> None:
        """Wait for what was sent to the sequencer, stop it, and sign a last checkpoint."""
        if self.appender.closed:
            return
        self.appender.close(timeout)
        self.publisher.stop(timeout)
        try:
            self.publish()
            self.store.close()
        except Exception as e:
            log.warning("last checkpoint not published: %s", e)
        if self._lease is not None:
            self._lease.release()
