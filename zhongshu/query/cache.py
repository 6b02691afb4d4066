"""Plans cached by query *shape*: template × caller × purpose × limit × engine generation.

A plan is built once per key (parsing and governing cost about a millisecond; a point lookup
costs microseconds) and dropped when the grants reload or the engine is rebuilt. The cache is
bounded (least recently built first out).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from zhongshu.query.plan import Plan

Key = tuple[Any, ...]


class PlanCache:
    """A bounded, thread-safe map of plan keys to plans."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._plans: OrderedDict[Key, Plan] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Key) -> Plan | None:
        """The plan cached under ``key``, or None."""
        return self._plans.get(key)

    def put(self, key: Key, plan: Plan) -> None:
        """Cache ``plan`` under ``key``, dropping the oldest plans beyond the bound."""
        with self._lock:
            self._plans[key] = plan
            while len(self._plans) > self.size:
                self._plans.popitem(last=False)

    def drop(self, key: Key) -> None:
        """Forget the plan cached under ``key`` (if any)."""
        with self._lock:
            self._plans.pop(key, None)

    def clear(self) -> None:
        """Drop every plan (grants changed, or the engine was rebuilt)."""
        with self._lock:
            self._plans.clear()

    def __len__(self) -> int:
        return len(self._plans)
