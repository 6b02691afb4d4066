"""Checking a ledger from the outside: the whole log, or one receipt, offline.

Nothing here trusts the hub: every leaf and node hash is recomputed, every checkpoint's
signature checked against a pinned log key (never one read from the hub or from the folder
being checked: :mod:`~zhongshu.ledger.pin`), every checkpoint's root compared with the tree
recomputed at its size (which is what consistency means), and checkpoints known from
elsewhere (a witness, an earlier receipt) must match too — else the log was forked,
truncated or rewritten. A log with no checkpoint does not verify: nothing vouches for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from zhongshu.ledger import entry, merkle, note
from zhongshu.ledger.layout import TILE, tiles_of
from zhongshu.ledger.store import LedgerStore


@dataclass
class Report:
    """What a verification found: ``ok`` when ``problems`` is empty."""

    size: int = 0
    checkpoints: int = 0
    key: str = ""  # the log key checked against (a vkey)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(text)


def check_tree(leaves: Iterable[bytes], checkpoints: list[note.Checkpoint], key: note.Verifier,
               report: Report, stored: Callable[[int, int], bytes | None] | None = None,
               known: Sequence[note.Checkpoint] = (), progress: Callable[[int], None] | None = None
               ) -> None:
    """Rebuild the tree from its leaf hashes; compare every stored node (when ``stored``
    gives them), every checkpoint root, signature and origin, and every known checkpoint."""
    report.key = key.vkey
    wanted: dict[int, list[note.Checkpoint]] = {}
    for c in [*checkpoints, *known]:
        wanted.setdefault(c.size, []).append(c)
    for c in checkpoints:
        if not c.signed_by(key):
            report.problem(f"checkpoint {c.size} is not signed by the log key {key.name}")
        if c.origin != key.name:
            report.problem(f"checkpoint {c.size} names origin {c.origin!r}, not {key.name!r}")
    for c in known:
        if not c.signed_by(key):
            report.problem(f"the known checkpoint {c.size} is not signed by the log key")
    f = merkle.Frontier()
    nodes: list[tuple[int, int, bytes]] = []
    for leaf in leaves:
        nodes.clear()
        f.append(leaf, nodes)
        if stored is not None:
            for level, idx, h in nodes:
                got = stored(level, idx)  # None: not available to check
                if got is not None and got != h:
                    report.problem(f"stored hash of subtree {level}/{idx} is "
                                   + ("missing" if not got else "wrong"))
        if f.size in wanted:
            r = f.root()
            for c in wanted[f.size]:
                if c.root != r:
                    report.problem(f"checkpoint {c.size}'s root differs from the log's tree at "
                                   "that size: the log was rewritten or forked")
        if progress is not None and f.size % 65536 == 0:
            progress(f.size)
    report.size = f.size
    report.checkpoints = len(checkpoints)
    if not checkpoints:
        report.problem(f"no signed checkpoint: nothing vouches for the log's {f.size} "
                       "entries (a hub signs one within seconds of its first entry)")
    elif (last := max(c.size for c in checkpoints)) < f.size:
        report.notes.append(f"{f.size - last} entries after the last checkpoint are not "
                            "signed yet")
    for size in wanted:
        if size > f.size:
            report.problem(f"a checkpoint of size {size} exists but the log has only "
                           f"{f.size} entries: the log was truncated")
    by_size: dict[int, bytes] = {}
    for c in [*checkpoints, *known]:
        if by_size.setdefault(c.size, c.root) != c.root:
            report.problem(f"two checkpoints of size {c.size} with different roots: a fork")


def verify_store(store: LedgerStore, key: note.Verifier, known: Sequence[note.Checkpoint] = (),
                 progress: Callable[[int], None] | None = None) -> Report:
    """Verify a ledger file: entries (canonical form, contiguous indices), every stored
    hash, every checkpoint."""
    report = Report()
    ckpts = []
    for size, root, text in store.checkpoints():
        try:
            c = note.parse_checkpoint(text)
        except ValueError as e:
            report.problem(f"checkpoint {size} does not parse: {e}")
            continue
        if c.size != size or c.root != root:
            report.problem(f"checkpoint {size}'s stored size or root differ from its note")
        ckpts.append(c)

    def leaves() -> Iterable[bytes]:
        expect = 0
        for idx, body in store.entries():
            if idx != expect:
                report.problem(f"entries {expect}…{idx - 1} are missing")
                expect = idx
            try:
                if entry.canonical_bytes(orjson.loads(body)) != body:
                    report.problem(f"entry {idx} is not in canonical form")
            except (ValueError, orjson.JSONDecodeError):
                report.problem(f"entry {idx} is not JSON")
            expect += 1
            yield merkle.leaf_hash(body)

    def stored(level: int, idx: int) -> bytes | None:
        try:
            return store.hash(level, idx)
        except ValueError:
            return b""

    check_tree(leaves(), ckpts, key, report, stored, known, progress)
    return report


def check_receipt(bundle: dict[str, Any], log_key: str | None = None,
                  witness_keys: list[str] | None = None, answer: bytes | None = None
                  ) -> Report:
    """Check a receipt bundle offline: the entry hashes to the receipt's leaf hash, the proof
    puts it in the checkpoint, the checkpoint is signed by the (pinned) log key, and which
    witnesses cosigned it; with ``answer`` (the exact result bytes received), that the entry
    records their hash."""
    report = Report()
    try:
        body = bundle["entry"].encode()
        receipt = bundle["receipt"]
        ckpt = note.parse_checkpoint(bundle["checkpoint"])
        proof = [bytes.fromhex(h) for h in bundle["proof"]]
        index = int(receipt["index"])
        pinned = note.Verifier.parse(log_key or bundle["log_key"])
    except (KeyError, TypeError, ValueError) as e:
        report.problem(f"not a receipt bundle: {e}")
        return report
    if log_key is None:
        report.notes.append("log key taken from the bundle itself; pin it with --log-key")
    elif bundle.get("log_key") and note.Verifier.parse(bundle["log_key"]) != pinned:
        report.notes.append("the bundle names another log key than the pinned one")
    leaf = merkle.leaf_hash(body)
    if leaf.hex() != receipt.get("entry_hash"):
        report.problem("the entry does not hash to the receipt's entry_hash")
    if receipt.get("ledger") != ckpt.origin:
        report.problem("the receipt and the checkpoint name different ledgers")
    if not ckpt.signed_by(pinned):
        report.problem("the checkpoint is not signed by the log key")
    if not merkle.verify_inclusion(index, ckpt.size, leaf, proof, ckpt.root):
        report.problem(f"the inclusion proof does not put entry {index} in checkpoint "
                       f"{ckpt.size}")
    wkeys = [note.Verifier.parse(k) for k in (witness_keys or bundle.get("witness_keys", []))]
    cosigned = [k.name for k in wkeys if ckpt.cosigned_by(k) is not None]
    quorum = int(bundle.get("quorum") or len(wkeys))
    report.notes.append(f"cosigned by {len(cosigned)} of {len(wkeys)} witnesses"
                        + (f" ({', '.join(cosigned)})" if cosigned else "")
                        + ("; final" if wkeys and len(cosigned) >= quorum else ""))
    if answer is not None:
        fields = orjson.loads(body)
        if fields.get("result_sha256") != hashlib.sha256(answer).hexdigest():
            report.problem("the answer's bytes do not hash to the entry's result_sha256")
    report.size = ckpt.size
    return report


def leaves_from_tiles(fetch: Callable[[int, int, int], bytes], size: int
                      ) -> Iterable[bytes]:
    """Every leaf hash of a tree of ``size``, read tile by tile through ``fetch(level, n,
    width)`` (c2sp.org/tlog-tiles, level 0)."""
    for n in range(tiles_of(size)):
        width = min(TILE, size - n * TILE)
        blob = fetch(0, n, width)
        if len(blob) != width * 32:
            raise ValueError(f"tile 0/{n} has {len(blob)} bytes, expected {width * 32}")
        for i in range(width):
            yield blob[i * 32:(i + 1) * 32]
