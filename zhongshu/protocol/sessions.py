"""Browser sessions: a member token exchanged once for an HttpOnly, ``SameSite=Strict``
cookie (the cockpit), so tokens never sit in pages, URLs or browser storage.

The hub keeps only the SHA-256 of each session id, in its session store (in memory by default:
a restarted hub signs its viewers out, and they sign in again), with the hash of the token it
was made from. A session lasts at most ``SESSION_S``, names one member and grants nothing its
token would not — nor for longer: every use checks, uncached, that the token is still live
(:meth:`Authenticator.token_live <zhongshu.policy.identity.Authenticator.token_live>`), so a
session ends the moment its token is revoked or expires, or its member's tokens are revoked.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from zhongshu.stores import SessionStore

COOKIE = "zs_session"
SESSION_S = 12 * 3600


@dataclass(frozen=True)
class Session:
    """A live session: its member, the hash of the token it was made from, its expiry."""

    member: str
    token_hash: str
    expires: float


class Sessions:
    """Session id → member and token, for ``SESSION_S`` seconds at most."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def open(self, member: str, token_hash: str) -> tuple[str, float]:
        """A new session of ``member``, made from the token with ``token_hash``: its id (for
        the cookie) and when it expires."""
        sid = secrets.token_urlsafe(32)
        now = time.time()
        expires = now + SESSION_S
        self.store.put(_hash(sid), member, token_hash, expires, now)
        return sid, expires

    def get(self, sid: str) -> Session | None:
        """The session ``sid`` names, unless unknown or expired (its token is checked by
        the caller: :mod:`zhongshu.protocol.auth`)."""
        hit = self.store.get(_hash(sid), time.time())
        return None if hit is None else Session(*hit)

    def close(self, sid: str) -> None:
        """End a session (signing out, or its token is no longer live)."""
        self.store.delete(_hash(sid))


def _hash(sid: str) -> bytes:
    return hashlib.sha256(sid.encode()).digest()
