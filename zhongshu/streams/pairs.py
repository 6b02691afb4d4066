"""Pairs of consecutive records of one key: a vehicle seen by a road segment's first camera
and then, with no sighting in between, by its second — the trip over that segment.

The rule, the same as the batch definition (``lag()`` over the key, ordered by event time):
a record pairs with the previous record of its key when both have the same ``same`` value,
different ``differ`` values, and at most ``max_gap_s`` between them. Records are taken in
the order they arrive; one older than the last record seen of its key (out of order) is
counted and neither pairs nor replaces it. Pairs whose duration is outside
[``min_ratio``, ``max_ratio``] × ``reference`` are outliers: counted, not kept.
"""

from __future__ import annotations

from typing import Any

import orjson

from zhongshu.config import PairsConfig
from zhongshu.streams.records import Lookups

EVICT_EVERY = 50_000


class Pairer:
    """The pairs stage of one stream: keeps each key's last record (for ``max_gap_s``)."""

    def __init__(self, cfg: PairsConfig, time_column: str) -> None:
        self.cfg = cfg
        self.time_column = time_column
        self.lookups = Lookups()
        # key → (event time, same, differ, the record's time as received)
        self.last: dict[Any, tuple[float, Any, Any, Any]] = {}
        self.pairs = 0
        self.outliers = 0
        self.out_of_order = 0
        self._watermark = 0.0
        self._since_evict = 0
        self._changed: set[Any] = set()  # keys whose last record changed since taken
        self._horizon: float | None = None  # set when keys were forgotten since taken

    def pair(self, records: list[tuple[float, dict[str, Any]]]
             ) -> list[tuple[float, dict[str, Any]]]:
        """The pairs that ``records`` (in arrival order) complete, outliers removed."""
        cfg = self.cfg
        key, same, differ, tcol = cfg.key, cfg.same, cfg.differ, self.time_column
        last, out = self.last, []
        lo, hi, ref = cfg.min_ratio, cfg.max_ratio, cfg.reference
        for t, rec in records:
            k = rec.get(key)
            if k is None:
                continue
            prev = last.get(k)
            if prev is not None and t < prev[0]:
                self.out_of_order += 1
                continue
            s, d = rec.get(same), rec.get(differ)
            last[k] = (t, s, d, rec.get(tcol))
            self._changed.add(k)
            if t > self._watermark:
                self._watermark = t
            if prev is None or s is None or prev[1] != s or prev[2] == d or \
                    t - prev[0] > cfg.max_gap_s:
                continue
            p = dict(rec)
            p["started_at"] = prev[3]
            p["duration_s"] = t - prev[0]
            self.lookups.apply(p)
            if ref is not None:
                expected = p.get(ref)
                if not expected or not lo <= p["duration_s"] / expected <= hi:
                    self.outliers += 1
                    continue
            self.pairs += 1
            out.append((t, p))
        self._since_evict += len(records)
        if self._since_evict >= EVICT_EVERY:
            self._evict()
        return out

    def _evict(self) -> None:
        """Forget keys not seen for ``max_gap_s`` (they cannot pair any more)."""
        self._since_evict = 0
        horizon = self._watermark - self.cfg.max_gap_s
        self.last = {k: v for k, v in self.last.items() if v[0] >= horizon}
        self._changed &= self.last.keys()
        self._horizon = horizon

    def take_changes(self) -> tuple[list[tuple[str, float, str]], float | None]:
        """What changed since last taken, to keep with the batch that changed it: (key,
        event time, state) of each key whose last record changed, and the event time before
        which keys were forgotten (None: none were)."""
        rows = []
        for k in self._changed:
            t, s, d, raw = self.last[k]
            rows.append((orjson.dumps(k).decode(), t, orjson.dumps([t, s, d, raw]).decode()))
        horizon, self._horizon = self._horizon, None
        self._changed = set()
        return rows, horizon

    def restore(self, rows: list[tuple[str, str]]) -> None:
        """Resume from the (key, state) rows kept of :meth:`take_changes`."""
        for key, state in rows:
            t, s, d, raw = orjson.loads(state)
            self.last[orjson.loads(key)] = (t, s, d, raw)
            self._watermark = max(self._watermark, t)
