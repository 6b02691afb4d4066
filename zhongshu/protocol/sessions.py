"""Browser sessions: a member token exchanged once for an HttpOnly, ``SameSite=Strict``
cookie (the cockpit), so tokens never sit in pages, URLs or browser storage.

The hub keeps only the SHA-256 of each session id, in its session store (in memory by default:
a restarted hub signs its viewers out, and they sign in again). A session lasts ``SESSION_S``
and names one member; it grants nothing its token would not.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from zhongshu.stores import SessionStore

COOKIE = "zs_session"
SESSION_S = 12 * 3600


class Sessions:
    """Session id → member, for ``SESSION_S`` seconds."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def open(self, member: str) -> tuple[str, float]:
        """A new session of ``member``: its id (for the cookie) and when it expires."""
        sid = secrets.token_urlsafe(32)
        now = time.time()
        expires = now + SESSION_S
        self.store.put(_hash(sid), member, expires, now)
        return sid, expires

    def member(self, sid: str) -> tuple[str, float] | None:
        """The member of a live session, and its expiry; None if unknown or expired."""
        return self.store.get(_hash(sid), time.time())

    def close(self, sid: str) -> None:
        """End a session (signing out)."""
        self.store.delete(_hash(sid))


def _hash(sid: str) -> bytes:
    return hashlib.sha256(sid.encode()).digest()
