"""What an entry says: one exchange, one refusal, or one governance change.

Entries hold hashes, names and counts — never SQL text, rows or personal identifiers: the
caller can recompute ``query_sha256`` from its own request and ``result_sha256`` from the
bytes it received, and nobody else learns either from the log. An exchange or refusal about
people carries their **subject tags** (keyed hashes of their identifiers, see
``zhongshu.policy.subjects``), each blinded by a nonce of the entry (:func:`blind`): a person,
who knows their own tag, finds it in the entry; nobody else can link two entries about the
same person by it (owners of different datasets, say). A declared exclusion's entry holds
them as ``subjects_excluded``, which no person's usage lists.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from zhongshu.ledger import canonical

VERSION = 2
"""The ``v`` every entry carries: the format its bytes are in. ``1``: orjson's sorted,
compact output (RFC 8785 for every entry the hub wrote, whose keys are ASCII and whose
integers are small — but it would have written a larger integer exactly, which RFC 8785
does not allow); ``2``: RFC 8785 for every value (``canonical.dumps_plain``). Entries keep
the version they were written with, so old ones verify as they were written."""


def canonical_bytes(fields: dict[str, Any]) -> bytes:
    """The bytes an entry with these parsed ``fields`` was written as, by its version ``v``
    (what verifiers hash to recompute its leaf).

    >>> canonical_bytes({"v": 1, "n": 2**60}), canonical_bytes({"v": 2, "kind": "change"})
    (b'{"n":1152921504606846976,"v":1}', b'{"kind":"change","v":2}')

    Raises:
        ValueError: a version this hub does not know, or fields with no form in it.
    """
    v = fields.get("v")
    if v == 1:
        return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
    if v == 2:
        return canonical.dumps(fields)
    raise ValueError(f"unknown entry format version {v!r}")


def iso_ms(ms: int) -> str:
    """An entry's time: UTC, to the millisecond.

    >>> iso_ms(1_795_602_721_123)
    '2026-11-25T10:32:01.123Z'
    """
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{ms % 1000:03d}Z"


def stamp(fields: dict[str, Any], origin: str, time: str) -> bytes:
    """An entry's canonical bytes: ``fields`` (stamped in place with ``v``, ``log`` and
    ``time``, an :func:`iso_ms` string), RFC 8785.

    >>> stamp({"kind": "change"}, "zhongshu/hz", "2026-11-25T10:32:01.123Z")
    b'{"kind":"change","log":"zhongshu/hz","time":"2026-11-25T10:32:01.123Z","v":2}'

    Raises:
        TypeError: ``fields`` holds a value JSON cannot carry (a set, bytes…).
    """
    fields["v"], fields["log"], fields["time"] = VERSION, origin, time
    return canonical.dumps_plain(fields)


def query_sha256(sql: str, purpose: str, fmt: str = "json", limit: int | None = None) -> str:
    """SHA-256 of the canonical query: RFC 8785 JSON of ``{"format", "limit", "purpose",
    "sql"}`` exactly as the request carried them."""
    return hashlib.sha256(canonical.dumps_plain(
        {"sql": sql, "purpose": purpose, "format": fmt, "limit": limit})).hexdigest()


def result_sha256(payload: bytes) -> str:
    """SHA-256 of the exact result bytes sent (canonical JSON ``rows`` or Arrow IPC stream)."""
    return hashlib.sha256(payload).hexdigest()


def blind(nonce: str, tag: str) -> str:
    """A subject tag as an entry holds it: ``SHA-256(nonce ":" tag)``, hex.

    >>> blind("00", "ab") == hashlib.sha256(b"00:ab").hexdigest()
    True
    """
    return hashlib.sha256(f"{nonce}:{tag}".encode()).hexdigest()


def about(fields: dict[str, Any], tags: Sequence[str]) -> bool:
    """Whether an entry's (not excluded) subjects hold one of ``tags``."""
    nonce, held = fields.get("subject_nonce"), fields.get("subjects")
    if not isinstance(nonce, str) or not isinstance(held, list):
        return False
    return any(blind(nonce, t) in held for t in tags)


def with_subjects(out: dict[str, Any], subjects: Sequence[str], excluded: bool = False
                  ) -> dict[str, Any]:
    """``out`` given the blinded ``subjects`` tags (and their nonce), if any."""
    if subjects:
        nonce = secrets.token_hex(16)
        out["subject_nonce"] = nonce
        out["subjects_excluded" if excluded else "subjects"] = sorted(
            {blind(nonce, t) for t in subjects})
    return out


def _who(caller: str, signature: str | None, key_id: str | None,
         on_behalf_of: str | None = None, subjects: Sequence[str] = (),
         excluded: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"caller": caller}
    with_subjects(out, subjects, excluded)
    if on_behalf_of is not None:  # a scenario member acting for its caller: both named
        out["on_behalf_of"] = on_behalf_of
    if signature:
        out["signature"] = {"key_id": key_id, "value": signature}
    return out


def exchange(caller: str, purpose: str, query: str, columns: dict[str, list[str]],
             grants: list[str], result: str, fmt: str, rows: int, truncated: bool,
             signature: str | None = None, key_id: str | None = None,
             on_behalf_of: str | None = None, subjects: Sequence[str] = (),
             excluded: bool = False, upstream: Sequence[dict[str, Any]] = (),
             partial: Sequence[str] = ()) -> dict[str, Any]:
    """The entry of one answered query (``on_behalf_of``: the caller a scenario member —
    or a peer hub — asked for; ``subjects``: the tags of the people it is about,
    ``excluded``: under a declared exclusion; ``upstream``: the receipts of the peer hubs'
    answers it was built from; ``partial``: the peer hubs missing from it)."""
    out = {"kind": "exchange", **_who(caller, signature, key_id, on_behalf_of, subjects,
                                      excluded),
           "purpose": purpose,
           "query_sha256": query, "datasets": sorted(columns),
           "columns": {d: sorted(c) for d, c in columns.items()}, "grants": sorted(grants),
           "result_sha256": result, "format": fmt, "rows": rows, "truncated": truncated,
           "outcome": "ok"}
    if upstream:
        out["upstream_receipts"] = [dict(r) for r in upstream]
    if partial:
        out["partial"] = sorted(partial)
    return out


def refusal(caller: str, endpoint: str, code: str, purpose: str | None = None,
            query: str | None = None, datasets: Sequence[str] = (),
            signature: str | None = None, key_id: str | None = None,
            on_behalf_of: str | None = None, scenario: str | None = None,
            subjects: Sequence[str] = (), excluded: bool = False) -> dict[str, Any]:
    """The entry of one refusal or failed request of a known member or person
    (``on_behalf_of``: the caller a scenario member asked for; ``scenario``: the scenario
    member whose service refused ``caller``; ``subjects``: as for :func:`exchange`)."""
    out: dict[str, Any] = {"kind": "refusal", **_who(caller, signature, key_id, on_behalf_of,
                                                     subjects, excluded),
                           "endpoint": endpoint, "outcome": code,
                           "datasets": sorted(datasets)}
    if scenario is not None:
        out["scenario"] = scenario
    if purpose is not None:
        out["purpose"] = purpose
    if query is not None:
        out["query_sha256"] = query
    return out


def login(caller: str, endpoint: str, purpose: str, tls: bool) -> dict[str, Any]:
    """The entry of one session opened by a known member on another face of the protocol
    (``endpoint``: ``pgwire``), for ``purpose``; each query in it is an exchange of its own."""
    return {"kind": "login", "caller": caller, "endpoint": endpoint, "purpose": purpose,
            "tls": tls, "outcome": "ok"}


def change(actor: str, action: str, target: dict[str, Any]) -> dict[str, Any]:
    """The entry of one governance change (grant, token, key, member): who changed what.

    ``target`` names what changed (ids, members, datasets) and never holds a secret; its
    floats (times) are written as their RFC 8785 text, so the entry stays float-free.
    """
    return {"kind": "change", "caller": actor, "action": action, "target": _no_floats(target),
            "outcome": "ok"}


def _no_floats(v: Any) -> Any:
    if isinstance(v, float):
        return canonical.number(v)
    if isinstance(v, dict):
        return {str(k): _no_floats(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_no_floats(x) for x in v]
    return v


def subscription(caller: str, phase: str, purpose: str, query: str,
                 columns: dict[str, list[str]], grants: list[str], rows_sent: int,
                 pushes: int, signature: str | None = None, key_id: str | None = None,
                 on_behalf_of: str | None = None) -> dict[str, Any]:
    """The entry of a subscription: when it opens (``phase`` ``open``), for every hour of
    delivery (``hour``) and when it ends (``close``), with the rows pushed so far."""
    return {"kind": "subscription", **_who(caller, signature, key_id, on_behalf_of),
            "phase": phase,
            "purpose": purpose, "query_sha256": query, "datasets": sorted(columns),
            "columns": {d: sorted(c) for d, c in columns.items()}, "grants": sorted(grants),
            "rows_sent": rows_sent, "pushes": pushes, "outcome": "ok"}
