"""Witnessing other hubs' logs (c2sp.org/tlog-witness): cosign a checkpoint only after
checking, atomically, that it extends the last one cosigned for that log.

A checkpoint of the same size with another root, or one whose consistency proof fails, is
kept as evidence of a fork: both notes are signed by the log's key, so the log cannot deny it.
One record per conflicting tree: retries of the same fork only count (``offered``).
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass

from zhongshu.ledger import merkle, note
from zhongshu.ledger.store import LedgerStore, Witnessing

log = logging.getLogger("zhongshu.ledger.witness")
MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class Answer:
    """The HTTP answer to an ``add-checkpoint`` request."""

    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


class Witness:
    """This hub as a witness of the logs it is configured to trust."""

    def __init__(self, store: LedgerStore, key: note.Signer, logs: dict[str, note.Verifier]
                 ) -> None:
        self.store = store
        self.key = key
        self.logs = logs

    def add_checkpoint(self, request: bytes) -> Answer:
        """Handle one ``add-checkpoint`` body: ``old N``, proof lines, a blank line, a note."""
        if len(request) > MAX_BODY:
            return Answer(400, "request too large\n")
        try:
            text = request.decode("utf-8")
            head, sep, ckpt_text = text.partition("\n\n")
            if not sep:
                return Answer(400, "expected `old N`, proof lines, a blank line, a checkpoint\n")
            lines = head.split("\n")
            if not lines[0].startswith("old ") or lines[0] != f"old {int(lines[0][4:])}":
                return Answer(400, "the first line is `old <size>`\n")
            old = int(lines[0][4:])
            proof = [base64.b64decode(x, validate=True) for x in lines[1:]]
            if len(proof) > 63 or any(len(h) != 32 for h in proof):
                return Answer(400, "at most 63 proof lines of 32-byte base64 hashes\n")
            ckpt = note.parse_checkpoint(ckpt_text)
        except (ValueError, UnicodeDecodeError) as e:
            return Answer(400, f"malformed request: {e}\n")
        key = self.logs.get(ckpt.origin)
        if key is None:
            return Answer(404, "unknown log origin\n")
        if not ckpt.signed_by(key):
            return Answer(403, "no valid signature by the log's key\n")
        if old > ckpt.size:
            return Answer(400, "old size exceeds the checkpoint size\n")
        with self.store.witnessing(ckpt.origin) as w:  # check and update atomically
            seen = w.seen  # (tlog-witness §add-checkpoint)
            size, root, text = seen if seen is not None else (0, b"", "")
            if old != size:
                return Answer(409, f"{size}\n", "text/x.tlog.size")
            if old == ckpt.size and seen is not None:
                if root != ckpt.root:
                    self._evidence(w, ckpt, "fork", text)
                    return Answer(409, f"{size}\n", "text/x.tlog.size")
            elif old > 0 and not merkle.verify_consistency(old, ckpt.size, root, ckpt.root,
                                                           proof):
                self._evidence(w, ckpt, "inconsistent", text)
                return Answer(422, "the consistency proof does not verify\n")
            elif old == 0 and proof:
                return Answer(422, "the proof must be empty from size 0\n")
            w.keep(ckpt.size, ckpt.root, ckpt.text)
        return Answer(200, self.key.cosign(ckpt.body))

    def _evidence(self, w: Witnessing, ckpt: note.Checkpoint, kind: str, seen: str) -> None:
        """Keep one record per conflicting tree (origin, size, root): a log retrying the
        same fork is refused each time, but adds no row and no error line."""
        fork = f"{ckpt.size} {ckpt.root.hex()}"
        if w.evidence(kind, int(time.time() * 1000),
                      f"cosigned before:\n{seen}\noffered now:\n{ckpt.text}", fork):
            log.error("ledger %s misbehaves: %s (evidence kept)", ckpt.origin, kind)
        else:
            log.debug("ledger %s offered the same %s again", ckpt.origin, kind)
