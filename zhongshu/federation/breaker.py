"""A circuit breaker per peer: after ``failures`` consecutive failures it opens, and for
``open_s`` every request fails at once (a dead or hanging district costs nothing); then one
trial request is let through (half open): success closes it, failure opens it again.

>>> b = Breaker(failures=2, open_s=10.0)
>>> b.allow(now=0.0), b.failed(now=0.0), b.allow(now=0.0), b.failed(now=1.0)
(True, None, True, None)
>>> b.allow(now=5.0), b.is_open(now=5.0)
(False, True)
>>> b.allow(now=11.5), b.allow(now=11.6)   # one trial at a time
(True, False)
>>> b.succeeded(); b.allow(now=12.0)
True
"""

from __future__ import annotations

import threading
import time


class Breaker:
    """Consecutive failures open it; see the module docstring."""

    def __init__(self, failures: int = 3, open_s: float = 5.0) -> None:
        self.failures = failures
        self.open_s = open_s
        self._count = 0
        self._opened_at: float | None = None
        self._trial = False
        #: when the peer was first seen failing in this run of failures (wall clock)
        self.down_since: float | None = None
        self._lock = threading.Lock()

    def allow(self, now: float | None = None) -> bool:
        """Whether a request may go out now (False: fail it at once)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._opened_at is None:
                return True
            if now - self._opened_at < self.open_s or self._trial:
                return False
            self._trial = True  # half open: this one request tries
            return True

    def is_open(self, now: float | None = None) -> bool:
        """Whether requests are being refused at once."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return self._opened_at is not None and (now - self._opened_at < self.open_s
                                                    or self._trial)

    def failed(self, now: float | None = None) -> None:
        """Count one failure (opening the breaker at ``failures``)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._count += 1
            if self.down_since is None:
                self.down_since = time.time()
            if self._count >= self.failures or self._trial:
                self._opened_at = now
            self._trial = False

    def succeeded(self) -> None:
        """The peer answered: close the breaker."""
        with self._lock:
            self._count = 0
            self._opened_at = None
            self._trial = False
            self.down_since = None
