"""One time limit per query, from the moment it arrives: planning and running share it.

Planning is pure Python over sqlglot trees (tokenizing, parsing, the firewall's rules,
transpiling) and some of its steps are superlinear in the query's size: measured with
sqlglot 30 on the demo city, a 20 kB chain of ``OR`` comparisons spent 13 s in the rules.
Bounding every step by input-size rules would be one rule per construct, forever behind the
next shape; instead the thread that plans is interrupted at the deadline, wherever it is:
:meth:`Deadline.bounding` arms a timer that raises an exception *in that thread*
(``PyThreadState_SetAsyncExc``), which CPython delivers at the thread's next bytecode
boundary, i.e. within microseconds in pure-Python code. The section holds no shared state
(it builds a fresh tree from the caller's text; grants and the plan cache are touched
outside it), so abandoning it midway leaves nothing half-done. Running is bounded by the
engines' own timeouts, given what is left (:meth:`Deadline.remaining`).
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from zhongshu.errors import QueryTimeout


class _Interrupted(BaseException):
    """Raised asynchronously in a planning thread at its deadline.

    A ``BaseException``: no ``except Exception`` in sqlglot or the rules can swallow it."""


def _raise_in(thread_id: int, exc: type[BaseException] | None) -> None:
    """Schedule ``exc`` in the thread (None: cancel one scheduled and not yet raised)."""
    obj = ctypes.py_object(exc) if exc is not None else None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), obj)


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

    @contextmanager
    def bounding(self) -> Iterator[None]:
        """Run the block in this thread, interrupted at the deadline.

        The block must hold no lock and leave no shared state half-changed when abandoned
        at any bytecode (planning: it only builds new objects).

        Raises:
            QueryTimeout: the deadline passed before or while the block ran.
        """
        left = self.remaining()
        me = threading.get_ident()
        guard = threading.Lock()
        state = {"armed": True, "fired": False}

        def fire() -> None:
            with guard:
                if state["armed"]:
                    state["fired"] = True
                    _raise_in(me, _Interrupted)

        timer = threading.Timer(left, fire)
        timer.daemon = True
        try:
            timer.start()
            try:
                yield
            finally:
                timer.cancel()
                with guard:
                    state["armed"] = False
                    if state["fired"]:
                        _raise_in(me, None)  # finished just as it fired: nothing pending
        except _Interrupted:
            raise self.timeout() from None
