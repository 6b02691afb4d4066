"""What an entry says: one exchange, one refusal, or one governance change.

Entries hold hashes, names and counts — never SQL text, rows or personal identifiers: the
caller can recompute ``query_sha256`` from its own request and ``result_sha256`` from the
bytes it received, and nobody else learns either from the log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from zhongshu.ledger import canonical

VERSION = 1  # the ``v`` every entry carries


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
    b'{"kind":"change","log":"zhongshu/hz","time":"2026-11-25T10:32:01.123Z","v":1}'

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


def _who(caller: str, signature: str | None, key_id: str | None,
         on_behalf_of: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"caller": caller}
    if on_behalf_of is not None:  # a scenario member acting for its caller: both named
        out["on_behalf_of"] = on_behalf_of
    if signature:
        out["signature"] = {"key_id": key_id, "value": signature}
    return out


def exchange(caller: str, purpose: str, query: str, columns: dict[str, list[str]],
             grants: list[str], result: str, fmt: str, rows: int, truncated: bool,
             signature: str | None = None, key_id: str | None = None,
             on_behalf_of: str | None = None) -> dict[str, Any]:
    """The entry of one answered query (``on_behalf_of``: the caller a scenario member
    asked for)."""
    return {"kind": "exchange", **_who(caller, signature, key_id, on_behalf_of),
            "purpose": purpose,
            "query_sha256": query, "datasets": sorted(columns),
            "columns": {d: sorted(c) for d, c in columns.items()}, "grants": sorted(grants),
            "result_sha256": result, "format": fmt, "rows": rows, "truncated": truncated,
            "outcome": "ok"}


def refusal(caller: str, endpoint: str, code: str, purpose: str | None = None,
            query: str | None = None, datasets: Sequence[str] = (),
            signature: str | None = None, key_id: str | None = None,
            on_behalf_of: str | None = None, scenario: str | None = None) -> dict[str, Any]:
    """The entry of one refusal or failed request of a known member (``on_behalf_of``: the
    caller a scenario member asked for; ``scenario``: the scenario member whose service
    refused ``caller``)."""
    out: dict[str, Any] = {"kind": "refusal", **_who(caller, signature, key_id, on_behalf_of),
                           "endpoint": endpoint, "outcome": code,
                           "datasets": sorted(datasets)}
    if scenario is not None:
        out["scenario"] = scenario
    if purpose is not None:
        out["purpose"] = purpose
    if query is not None:
        out["query_sha256"] = query
    return out


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
