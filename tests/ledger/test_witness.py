"""Witnessing (c2sp.org/tlog-witness): cosign only what extends what was cosigned before."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from zhongshu.ledger import Ledger, Witness, note
from zhongshu.ledger import entry as entries
from zhongshu.ledger.memory import MemoryLedgerStore
from zhongshu.ledger.store import LedgerStore, SqliteLedgerStore

ORIGIN = "district.zhongshu/log"


@pytest.fixture(params=["sqlite", "memory"])
def kind(request: pytest.FixtureRequest) -> str:
    """The store both the log and its witness keep their state in."""
    return str(request.param)


def _store(kind: str, path: Path) -> LedgerStore:
    return SqliteLedgerStore(path) if kind == "sqlite" else MemoryLedgerStore()


@pytest.fixture
def log(tmp_path: Path, kind: str) -> Ledger:
    return Ledger(_store(kind, tmp_path / "log.db"), ORIGIN,
                  note.Signer.load_or_create(tmp_path / "log.key", ORIGIN, note.ED25519))


@pytest.fixture
def witness(tmp_path: Path, log: Ledger, kind: str) -> Witness:
    key = note.Signer.load_or_create(tmp_path / "w.key", "city.zhongshu/witness",
                                     note.COSIGNATURE_V1)
    return Witness(_store(kind, tmp_path / "witness.db"), key, {ORIGIN: log.log_key.verifier})


def _grow(log: Ledger, n: int) -> note.Checkpoint:
    for i in range(n):
        log.append_now(entries.change("cli:x", "member.add", {"subject": str(i)}))
    c = log.publish()
    assert c is not None
    return c


def _request(log: Ledger, old: int, c: note.Checkpoint) -> bytes:
    proof = log.consistency(old, c.size) if old else []
    return (f"old {old}\n" + "".join(base64.b64encode(h).decode() + "\n" for h in proof)
            + "\n" + c.text).encode()


def test_cosigns_a_growing_log(log: Ledger, witness: Witness) -> None:
    c1 = _grow(log, 5)
    a = witness.add_checkpoint(_request(log, 0, c1))
    assert a.status == 200, a.body
    cosigned = c1.with_signatures([a.body])
    t = cosigned.cosigned_by(witness.key.verifier)
    assert t is not None and t > 1_700_000_000
    c2 = _grow(log, 9)
    assert witness.add_checkpoint(_request(log, 5, c2)).status == 200
    # a stale old size gets the witness's size back
    stale = witness.add_checkpoint(_request(log, 5, _grow(log, 1)))
    assert (stale.status, stale.body, stale.content_type) == (409, "14\n", "text/x.tlog.size")


def test_refuses_unknown_logs_bad_signatures_and_bad_proofs(tmp_path: Path, log: Ledger,
                                                           witness: Witness) -> None:
    c1 = _grow(log, 4)
    assert witness.add_checkpoint(_request(log, 0, c1)).status == 200
    other = Ledger(SqliteLedgerStore(tmp_path / "o.db"), "other/log",
                   note.Signer.load_or_create(tmp_path / "o.key", "other/log", note.ED25519))
    assert witness.add_checkpoint(_request(other, 0, _grow(other, 2))).status == 404
    impostor = note.Signer.load_or_create(tmp_path / "evil.key", ORIGIN, note.ED25519)
    c2 = _grow(log, 3)
    forged = note.parse_checkpoint(c2.body + "\n" + impostor.sign_note(c2.body))
    assert witness.add_checkpoint(_request(log, 4, forged)).status == 403
    bad = _request(log, 4, c2).replace(base64.b64encode(log.consistency(4, 7)[0]),
                                       base64.b64encode(bytes(32)))
    assert witness.add_checkpoint(bad).status == 422
    assert witness.add_checkpoint(b"old x\n\n" + c2.text.encode()).status == 400
    assert witness.add_checkpoint(_request(log, 4, c2)).status == 200


def test_a_forked_log_is_caught_and_kept_as_evidence(tmp_path: Path, log: Ledger,
                                                     witness: Witness) -> None:
    c1 = _grow(log, 6)
    assert witness.add_checkpoint(_request(log, 0, c1)).status == 200
    # the log's operator signs a second tree of the same size: a split view
    fork_body = note.body(ORIGIN, c1.size, bytes(32))
    fork = note.parse_checkpoint(fork_body + "\n" + log.log_key.sign_note(fork_body))
    a = witness.add_checkpoint(f"old {c1.size}\n\n{fork.text}".encode())
    assert a.status == 409
    # and one that claims to extend it with an invalid proof
    c2 = _grow(log, 2)
    fork2_body = note.body(ORIGIN, c2.size, bytes(32))
    fork2 = note.parse_checkpoint(fork2_body + "\n" + log.log_key.sign_note(fork2_body))
    proof = log.consistency(c1.size, c2.size)
    req = (f"old {c1.size}\n" + "".join(base64.b64encode(h).decode() + "\n" for h in proof)
           + "\n" + fork2.text).encode()
    assert witness.add_checkpoint(req).status == 422
    kinds = [e["kind"] for e in witness.store.evidence()]
    assert kinds == ["inconsistent", "fork"]
    assert all(fork_body in str(e["detail"]) or fork2_body in str(e["detail"])
               for e in witness.store.evidence())


def test_a_fork_retried_ten_times_is_one_evidence_record(log: Ledger, witness: Witness,
                                                         caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    c1 = _grow(log, 6)
    assert witness.add_checkpoint(_request(log, 0, c1)).status == 200
    fork_body = note.body(ORIGIN, c1.size, bytes(32))
    fork = f"old {c1.size}\n\n{fork_body}\n{log.log_key.sign_note(fork_body)}".encode()
    with caplog.at_level("ERROR", logger="zhongshu.ledger.witness"):
        answers = [witness.add_checkpoint(fork).status for _ in range(10)]
    assert answers == [409] * 10  # refused every time…
    kept = witness.store.evidence()  # …kept once, counted ten times, logged once
    assert [(e["kind"], e["offered"]) for e in kept] == [("fork", 10)]
    assert fork_body in str(kept[0]["detail"])
    assert len([r for r in caplog.records if r.levelname == "ERROR"]) == 1
    # another conflicting tree of the same size is another fork: a second record
    other_body = note.body(ORIGIN, c1.size, b"\x01" * 32)
    other = f"old {c1.size}\n\n{other_body}\n{log.log_key.sign_note(other_body)}".encode()
    assert witness.add_checkpoint(other).status == 409
    assert [e["offered"] for e in witness.store.evidence()] == [1, 10]
