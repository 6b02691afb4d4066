"""Receipts checked against a hub's signed checkpoint, from outside the hub."""

from __future__ import annotations

import time
from typing import Any

import httpx

from zhongshu.ledger import merkle, note


def assert_all_proved(hub: str, receipts: list[dict[str, Any]], timeout_s: float = 30) -> None:
    """Wait for a checkpoint of ``hub`` (a URL) covering every receipt, check it is signed by
    the hub's log key, and prove each receipt's entry hash in it (RFC 6962 inclusion)."""
    top = max(r["index"] for r in receipts)
    key = note.Verifier.parse(httpx.get(f"{hub}/v1/ledger/key").json()["log"])
    deadline = time.monotonic() + timeout_s
    while True:
        ckpt = note.parse_checkpoint(httpx.get(f"{hub}/v1/ledger/checkpoint").text)
        if ckpt.size > top:
            break
        assert time.monotonic() < deadline, "no checkpoint covers the receipts"
        time.sleep(0.2)
    assert ckpt.signed_by(key)
    with httpx.Client(base_url=hub, timeout=30) as c:
        for r in receipts:
            p = c.get("/v1/ledger/proof/inclusion",
                      params={"index": r["index"], "size": ckpt.size}).json()
            assert merkle.verify_inclusion(r["index"], ckpt.size,
                                           bytes.fromhex(r["entry_hash"]),
                                           [bytes.fromhex(h) for h in p["hashes"]],
                                           ckpt.root), r
