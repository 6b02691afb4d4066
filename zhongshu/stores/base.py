"""What each store promises (``typing.Protocol``s: any class with these methods is one).

* ``MetadataStore`` — members, token hashes, keys, stored grants, the list of governance
  changes and the last check of each dataset; ``on_change`` is called after each change
  (the composition root points it at the ledger).
* ``NonceStore`` — signed-request nonces, each accepted once within its time to live.
* ``SessionStore`` — browser sessions (hashes of session ids → member, token hash, expiry).
* ``RateCounters`` — sliding one-window counters (a grant's queries per minute).
* ``LookupCounts`` — distinct values per key in a sliding window (a consumer's pseudonym
  lookups per purpose per 24 h; values arrive as keyed digests, never in clear).

Times are epoch seconds (``time.time()``) unless said otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

ChangeHook = Callable[[str, str, str, dict[str, Any]], None]


class MetadataStore(Protocol):
    """Members, tokens, keys, stored grants, governance changes and dataset checks."""

    on_change: ChangeHook | None

    def upsert_member(self, name: str, kind: str, title: str, roles: list[str]) -> None:
        """Record a member as declared in the city configuration."""

    def add_token(self, token_hash: str, member: str, label: str = "",
                  expires_at: float | None = None) -> None:
        """Store the hash of a newly issued token."""

    def token_member(self, token_hash: str, now: float | None = None) -> str | None:
        """The member holding a valid (unrevoked, unexpired) token with this hash, or None."""

    def revoke_tokens(self, member: str, prefix: str | None = None) -> int:
        """Revoke a member's tokens (all, or those whose hash starts with ``prefix``);
        return how many were revoked."""

    def add_key(self, key_id: str, member: str, public_key: bytes) -> None:
        """Register a member's Ed25519 public key (32 raw bytes) under ``key_id``."""

    def key(self, key_id: str) -> tuple[str, bytes] | None:
        """(member, public key) of an unrevoked key, or None."""

    def record_change(self, actor: str, action: str, subject: str,
                      details: dict[str, Any] | None = None) -> int:
        """Record who changed what; return the change's sequence number (1, 2, …) and call
        ``on_change`` with the change. Details never hold a secret."""

    def changes(self, since: int = 0) -> list[dict[str, Any]]:
        """Changes after sequence number ``since``, oldest first: ``{"seq", "at", "actor",
        "action", "subject", "details"}``."""

    def version(self) -> int:
        """The latest change's sequence number (0 when none)."""

    def add_grant(self, grant_id: str, owner: str, spec: dict[str, Any], actor: str) -> None:
        """Store a grant made through the CLI or the API."""

    def revoke_grant(self, grant_id: str, actor: str) -> bool:
        """Revoke a stored grant; False when there is no such active grant."""

    def stored_grants(self) -> list[tuple[str, str, dict[str, Any], str]]:
        """Active stored grants, oldest first: (id, owner, spec, created_by)."""

    def members(self) -> list[dict[str, Any]]:
        """Members by name: ``{"name", "kind", "title", "roles" (JSON text), "tokens"}``,
        ``tokens`` being the count of valid tokens."""

    def record_dataset(self, name: str, owner: str, source: str, listed: bool, status: str,
                       reason: str, observed: dict[str, str]) -> None:
        """Record a dataset's last check: ``ok``, ``drift``, ``invalid`` or ``source_down``,
        and the columns read from the source (``observed``: column → type), added to those
        seen before (:meth:`dataset_seen`)."""

    def dataset_status(self, name: str) -> tuple[str, str] | None:
        """(status, reason) of a dataset's last check, or None if never checked."""

    def dataset_seen(self, name: str) -> set[str]:
        """The columns ever read from the source for this dataset: a declared column the
        source lacks now is drift if it was seen, an owner's mistake if it never was."""

    def close(self) -> None:
        """Release connections (the store may not be used afterwards)."""


class NonceStore(Protocol):
    """Nonces of signed requests: each is accepted once while it is remembered."""

    def spend(self, nonce: str, now: float, ttl_s: float) -> bool:
        """Remember ``nonce`` until ``now + ttl_s``; False if it is already remembered
        (a replay). Nonces past their time are forgotten."""

    def close(self) -> None:
        """Release connections."""


class SessionStore(Protocol):
    """Browser sessions by the SHA-256 of their id (an id itself is never stored), each with
    the hash of the token it was made from (so it can end with that token)."""

    def put(self, sid_hash: bytes, member: str, token_hash: str, expires_at: float,
            now: float) -> None:
        """Open a session of ``member``, made from the token with ``token_hash``, until
        ``expires_at``; sessions expired at ``now`` may be dropped on the way."""

    def get(self, sid_hash: bytes, now: float) -> tuple[str, str, float] | None:
        """(member, token_hash, expires_at) of a live session, or None if unknown or
        expired."""

    def delete(self, sid_hash: bytes) -> None:
        """End a session (unknown ids are ignored)."""

    def close(self) -> None:
        """Release connections."""


class RateCounters(Protocol):
    """Sliding-window counters: at most ``limit`` hits per key in any ``window_s``."""

    def hit(self, key: str, limit: int, window_s: float, now: float) -> float | None:
        """Count one hit of ``key`` at ``now`` if fewer than ``limit`` hits fall in the
        window ending now, and return None; otherwise count nothing and return the seconds
        until a hit would be allowed again."""

    def close(self) -> None:
        """Release connections."""


class LookupCounts(Protocol):
    """Distinct values per key in a sliding window: each value counts once while it was last
    seen within the window."""

    def spend(self, key: str, values: Sequence[str], limit: int, window_s: float,
              now: float) -> int | None:
        """If the distinct values of ``key`` seen in the window ending ``now``, with
        ``values``, number at most ``limit``: mark each of ``values`` seen at ``now`` and
        return None. Otherwise mark nothing and return how many distinct values of ``key``
        the window holds. Values older than the window are forgotten."""

    def count(self, key: str, window_s: float, now: float) -> int:
        """How many distinct values of ``key`` were seen in the window ending ``now``."""

    def close(self) -> None:
        """Release connections."""
