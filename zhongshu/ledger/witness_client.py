"""Asking witnesses to cosign this log's checkpoints, and when a checkpoint is final.

Each witness (a peer hub, c2sp.org/tlog-witness) is sent the checkpoint with a consistency
proof from the size it cosigned last; its cosignature is kept with the checkpoint. A
checkpoint is final once cosigned by :meth:`WitnessClient.quorum` of the configured witnesses.

The last outcome of asking each witness is kept (:meth:`WitnessClient.outcomes`): a witness
that refuses or cannot be reached stops checkpoints becoming final, and the operator's health
says so (:meth:`WitnessClient.finality`). Outcomes are states from a closed set, never the
witness's answer or its address.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import httpx

from zhongshu.config import WitnessPeer
from zhongshu.errors import LedgerInvalid
from zhongshu.ledger import merkle, note
from zhongshu.ledger.store import LedgerStore

log = logging.getLogger("zhongshu.ledger")
__all__ = ["Outcome", "WitnessClient"]

TIMEOUT_S = 5.0

State = Literal["not asked yet", "cosigned", "refused", "unreachable"]


@dataclass(frozen=True)
class Outcome:
    """The last answer of one witness: its state and since when (Unix seconds)."""

    state: State
    since: float


class WitnessClient:
    """The witnesses of one log: asking them, and counting their cosignatures."""

    def __init__(self, store: LedgerStore, peers: Sequence[WitnessPeer],
                 quorum: int | None = None) -> None:
        self.store = store
        self.peers = [(w, note.Verifier.parse(w.key)) for w in peers]
        self._quorum = quorum
        self._lock = threading.Lock()
        now = time.time()
        self._outcomes = {p.name: Outcome("not asked yet", now) for p in peers}

    def outcomes(self) -> dict[str, Outcome]:
        """Witness name → its last outcome."""
        with self._lock:
            return dict(self._outcomes)

    def _keep(self, name: str, state: State) -> None:
        with self._lock:
            if self._outcomes[name].state != state:
                self._outcomes[name] = Outcome(state, time.time())

    def finality(self, ckpt: note.Checkpoint | None) -> str:
        """``none`` (no witness configured), ``final`` (``ckpt`` is), ``pending`` (it may still
        become final) or ``lost`` (too many witnesses refuse or cannot be reached for any
        checkpoint to reach the quorum)."""
        if not self.peers:
            return "none"
        if ckpt is not None and self.final(ckpt):
            return "final"
        failing = sum(o.state in ("refused", "unreachable") for o in self.outcomes().values())
        return "lost" if len(self.peers) - failing < self.quorum() else "pending"

    def quorum(self) -> int:
        """Cosignatures needed for a checkpoint to be final (default: every witness)."""
        return self._quorum or len(self.peers)

    def cosigners(self, ckpt: note.Checkpoint) -> list[str]:
        """The configured witnesses whose valid cosignature ``ckpt`` carries."""
        return [p.name for p, k in self.peers if ckpt.cosigned_by(k) is not None]

    def final(self, ckpt: note.Checkpoint) -> bool:
        """Whether ``ckpt`` carries valid cosignatures of at least ``quorum`` witnesses."""
        return len(self.cosigners(ckpt)) >= self.quorum()

    def ask_all(self, ckpt: note.Checkpoint) -> None:
        """Ask every witness that has not cosigned ``ckpt`` yet; a witness that is down or
        refuses is logged (it delays finality, never the log)."""
        for peer, key in self.peers:
            try:
                self.ask(peer, key, ckpt)
            except httpx.HTTPError as e:
                self._keep(peer.name, "unreachable")
                log.warning("witness %s: %s", peer.name, e)
            except Exception as e:
                self._keep(peer.name, "refused")
                log.warning("witness %s: %s", peer.name, e)
            else:
                self._keep(peer.name, "cosigned")

    def ask(self, peer: WitnessPeer, key: note.Verifier, ckpt: note.Checkpoint) -> None:
        """Have ``peer`` cosign ``ckpt`` and keep its cosignature.

        Raises:
            LedgerInvalid: the witness has seen a larger size than ``ckpt``'s, refused it, or
                answered without a valid cosignature under ``key``.
            httpx.HTTPError: it could not be reached.
        """
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
                           timeout=TIMEOUT_S)
            if r.status_code == 409 and r.headers.get("content-type", "").startswith(
                    "text/x.tlog.size"):
                old = int(r.text.strip())  # it cosigned another size: prove from there
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
