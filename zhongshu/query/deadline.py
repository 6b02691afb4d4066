"""One time limit per query, from the moment it arrives: planning and running share it.

Planning is pure Python over sqlglot trees (tokenizing, parsing, the firewall's rules,
transpiling) and some of its steps are superlinear in the query's size: measured with
sqlglot 30 on the demo city, a 20 kB chain of ``OR`` comparisons spent 13 s in the rules.
Bounding every step by input-size rules would be one rule per construct, forever behind the
next shape; instead the thread that plans is interrupted at the deadline, wherever it is:
:meth:`Deadline.bounded` calls a function with a timer that raises an exception *in that
thread* (``PyThreadState_SetAsyncExc``), which CPython delivers at the thread's next bytecode
boundary, i.e. within microseconds in pure-Python code. Such an exception can land anywhere,
so the timer raises it only while the function's own frame is on the thread's stack, under a
lock the caller takes to stop it, and raises it again while the function has not ended (one
delivered inside a garbage-collector callback or a finaliser is swallowed): nothing is ever
raised in the thread after the bounded call has returned, and nothing that is swallowed
lets it run on. The section holds no shared state (it builds a fresh tree from the
caller's text; grants and the plan cache are touched outside it), so abandoning it midway
leaves nothing half-done. Running is bounded by the
engines' own timeouts, given what is left (:meth:`Deadline.remaining`).
"""

from __future__ import annotations

import ctypes
import logging
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, Generic, TypeVar

from zhongshu.errors import QueryTimeout

log = logging.getLogger("zhongshu.query")
T = TypeVar("T")


class _Interrupted(BaseException):
    """Raised asynchronously in a planning thread at its deadline.

    A ``BaseException``: no ``except Exception`` in sqlglot or the rules can swallow it."""


REFIRE_S = 0.01
"""How often an interrupt is raised again while the section has not ended: one delivered
inside a garbage-collector callback, a finaliser or a weakref callback is swallowed by the
interpreter (reported as "unraisable"), and the section would otherwise run on unbounded."""
REFIRE_MAX = 100
"""Interrupts raised at most, per section (one second of them)."""


def _raise_in(thread_id: int, exc: type[BaseException] | None) -> None:
    """Schedule ``exc`` in the thread (None: cancel one scheduled and not yet raised)."""
    obj = ctypes.py_object(exc) if exc is not None else None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), obj)


def _quiet_unraisable(previous: Callable[[Any], object]) -> Callable[[Any], object]:
    """``sys.unraisablehook`` that drops our own swallowed interrupts (they are raised again,
    see ``REFIRE_S``) and hands everything else to ``previous``."""
    def hook(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, _Interrupted):
            previous(unraisable)
    hook.zhongshu_deadline = True  # type: ignore[attr-defined]
    return hook


def _install_hook() -> None:
    """Put the filter in front of whatever hook is installed now (once)."""
    if not getattr(sys.unraisablehook, "zhongshu_deadline", False):
        sys.unraisablehook = _quiet_unraisable(sys.unraisablehook)


class Deadline:
    """The moment a query's time is up.

    Args:
        seconds: the hub's per-query time limit (``query_timeout_s``), counted from now.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def timeout(self) -> QueryTimeout:
        """The protocol's error for this limit."""
        return QueryTimeout(f"the query exceeded the hub's time limit of {self.seconds:g} s; "
                            "narrow it (filters, LIMIT) or aggregate")

    def remaining(self) -> float:
        """Seconds left (> 0).

        Raises:
            QueryTimeout: none are left.
        """
        left = self.at - time.monotonic()
        if left <= 0:
            raise self.timeout()
        return left

    def bounded(self, fn: Callable[[], T]) -> T:
        """``fn()``, in this thread, interrupted at the deadline.

        ``fn`` must hold no lock and leave no shared state half-changed when abandoned at any
        bytecode (planning: it only builds new objects).

        Raises:
            QueryTimeout: the deadline passed before or while ``fn`` ran.
        """
        return _Section(self, fn).run()


class _Section(Generic[T]):
    """One bounded call (see :meth:`Deadline.bounded`)."""

    def __init__(self, deadline: Deadline, fn: Callable[[], T]) -> None:
        self.deadline = deadline
        self.fn = fn
        self.guard = threading.Lock()
        self.ended = threading.Event()
        self.done = False
        self.frame: FrameType | None = None  # fn's frame, while it runs
        self.thread = threading.get_ident()

    def run(self) -> T:
        left = self.deadline.remaining()
        _install_hook()
        threading.Thread(target=self._fire, args=(left,), name="zhongshu-deadline",
                         daemon=True).start()
        interrupted = False
        try:
            try:
                result = self._call()
            finally:
                # an interrupt delivered here is caught below; one still pending is
                # cancelled under the lock the timer raises under, after which it raises none
                while not self.done:
                    try:
                        with self.guard:
                            self.done = True
                            _raise_in(self.thread, None)
                    except _Interrupted:
                        interrupted = True
                self.ended.set()
        except _Interrupted:
            interrupted = True
        if interrupted:
            raise self.deadline.timeout() from None
        return result

    def _call(self) -> T:
        self.frame = sys._getframe()
        return self.fn()

    def _inside(self) -> bool:
        """Whether the thread is still in ``fn`` (its frame on the thread's stack)."""
        f = sys._current_frames().get(self.thread)
        while f is not None:
            if f is self.frame:
                return True
            f = f.f_back
        return False

    def _fire(self, left: float) -> None:
        if self.ended.wait(left):
            return
        for _ in range(REFIRE_MAX):
            with self.guard:
                if self.done:
                    return
                if self._inside():
                    _raise_in(self.thread, _Interrupted)
            if self.ended.wait(REFIRE_S):
                return
        log.warning("a bounded section did not end %.1f s after its deadline",
                    REFIRE_S * REFIRE_MAX)
