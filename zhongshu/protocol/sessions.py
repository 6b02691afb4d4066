"""Browser sessions: a member token exchanged once for an HttpOnly, ``SameSite=Strict``
cookie (the cockpit), so tokens never sit in pages, URLs or browser storage.

The hub keeps only the SHA-256 of each session id, in memory: a restarted hub signs its
viewers out (they sign in again). A session lasts ``SESSION_S`` and names one member; it
grants nothing its token would not.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time

COOKIE = "zs_session"
SESSION_S = 12 * 3600


class Sessions:
    """Session id → member, for ``SESSION_S`` seconds."""

    def __init__(self) -> None:
        self._by_hash: dict[bytes, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def open(self, member: str) -> tuple[str, float]:
        """A new session of ``member``: its id (for the cookie) and when it expires."""
        sid = secrets.token_urlsafe(32)
        expires = time.time() + SESSION_S
        with self._lock:
            now = time.time()
            self._by_hash = {h: v for h, v in self._by_hash.items() if v[1] > now}
            self._by_hash[hashlib.sha256(sid.encode()).digest()] = (member, expires)
        return sid, expires

    def member(self, sid: str) -> tuple[str, float] | None:
        """The member of a live session, and its expiry; None if unknown or expired."""
        hit = self._by_hash.get(hashlib.sha256(sid.encode()).digest())
        if hit is None or hit[1] <= time.time():
            return None
        return hit

    def close(self, sid: str) -> None:
        """End a session (signing out)."""
        with self._lock:
            self._by_hash.pop(hashlib.sha256(sid.encode()).digest(), None)
