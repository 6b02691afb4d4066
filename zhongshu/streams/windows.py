"""Tumbling windows on event time, kept in the hub's SQLite file of the stream's owner.

Each aggregate is one table: a row per window and group, holding the measures as served
(count, sum, avg, min, max, last) and the partials they are merged from (sum and count of non-null
values), so a batch of events is folded into its windows with one upsert per window and
group. A window takes events until ``lateness_s`` after its end, measured on the largest
event time seen (the watermark); later events are counted as too late and dropped.
"""

from __future__ import annotations

import functools
import math
import sqlite3
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from zhongshu.config import AggregateConfig, Column, StreamConfig, parse_measure
from zhongshu.streams import columnar
from zhongshu.streams.columnar import Columns

_SQL_TYPE = {"BIGINT": "INTEGER", "INTEGER": "INTEGER", "DOUBLE": "DOUBLE", "VARCHAR": "TEXT",
             "TIMESTAMP": "TIMESTAMP", "BOOLEAN": "BOOLEAN"}
REJECT_SAMPLES_PER_MINUTE = 100


def table_of(dataset: str) -> str:
    """The SQLite table serving an aggregate dataset."""
    return dataset.replace(".", "__")


def rejected_table(stream: str) -> str:
    """The SQLite table of a stream's rejected messages."""
    return f"rejected__{stream.replace('-', '_')}"


@functools.lru_cache(maxsize=4096)  # window bounds repeat for every group of a window
def _ts(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


class Aggregate:
    """One declared aggregate: folds records into its windows' partials."""

    def __init__(self, cfg: AggregateConfig, columns: list[Column]) -> None:
        """``columns``: those of the records it folds (a stream's, or its pairs')."""
        self.cfg = cfg
        self.table = table_of(cfg.dataset)
        types = {c.name: c.type for c in columns}
        self.types = types
        self.groups = [(g, types[g]) for g in cfg.group_by]
        self.measures = [(name, *parse_measure(text)) for name, text in cfg.measures.items()]
        self.watermark = 0.0
        self.late = 0

    def needs(self) -> set[str]:
        """The record columns it reads."""
        return {g for g, _ in self.groups} | {c for _, _, c in self.measures if c} | (
            {self.cfg.where} if self.cfg.where else set())

    def ddl(self) -> list[str]:
        cols = ["window_start TIMESTAMP NOT NULL", "window_end TIMESTAMP NOT NULL",
                "gkey TEXT NOT NULL"]
        cols += [f'"{g}" {_SQL_TYPE.get(t.upper(), "TEXT")}' for g, t in self.groups]
        for name, fn, col in self.measures:
            if fn == "count" or col is None:  # count(*) is the only measure without a column
                cols.append(f'"{name}" INTEGER NOT NULL DEFAULT 0')
            elif fn == "last":
                cols += [f'"{name}" {_SQL_TYPE.get(self.types[col].upper(), "TEXT")}',
                         f'"{name}__t" DOUBLE']
            else:
                cols += [f'"{name}" DOUBLE', f'"{name}__s" DOUBLE', f'"{name}__n" INTEGER']
        return [f'CREATE TABLE IF NOT EXISTS "{self.table}" ({", ".join(cols)}, '
                "PRIMARY KEY (window_start, gkey))",
                f'CREATE INDEX IF NOT EXISTS "{self.table}__end" ON "{self.table}" '
                "(window_end)"]

    def fold(self, records: Iterable[tuple[float, dict[str, Any]]]
             ) -> dict[tuple[float, tuple[Any, ...]], list[Any]]:
        """Partials of ``records`` per (window start, group key); late ones are dropped."""
        w, lateness = self.cfg.window_s, self.cfg.lateness_s
        out: dict[tuple[float, tuple[Any, ...]], list[Any]] = {}
        groups, measures = [g for g, _ in self.groups], self.measures
        wm = self.watermark
        where = self.cfg.where
        for t, rec in records:
            if where is not None and not rec[where]:
                continue
            start = math.floor(t / w) * w
            if start + w + lateness < wm:
                self.late += 1
                continue
            if t > wm:
                wm = t
            gvals = tuple([rec[g] for g in groups])
            key = (start, gvals)
            acc = out.get(key)
            if acc is None:
                acc = out[key] = [list(gvals)] + [[0, None, 0] for _ in measures]
            for i, (_, fn, col) in enumerate(measures, 1):
                a = acc[i]
                if col is None:  # count(*), the only measure without a column
                    a[0] += 1
                    continue
                v = rec[col]
                if fn == "count":
                    if v is not None:
                        a[0] += 1
                    continue
                if fn == "last":
                    if a[2] == 0 or t >= a[0]:
                        a[0], a[1], a[2] = t, v, 1
                    continue
                if v is None:
                    continue
                a[2] += 1
                if fn in ("sum", "avg"):
                    a[1] = v if a[1] is None else a[1] + v
                elif fn == "min":
                    a[1] = v if a[1] is None or v < a[1] else a[1]
                else:
                    a[1] = v if a[1] is None or v > a[1] else a[1]
        self.watermark = wm
        return out

    def fold_columns(self, cols: Columns) -> dict[tuple[float, tuple[Any, ...]], list[Any]]:
        """What :meth:`fold` gives for the same records, held as columns (Arrow's hash
        aggregation: many records per Python step)."""
        out, self.watermark, late = columnar.fold(
            self.cfg.window_s, self.cfg.lateness_s, self.watermark, self.cfg.where,
            [g for g, _ in self.groups], self.measures, cols)
        self.late += late
        return out

    def upsert(self, c: sqlite3.Connection,
               folded: dict[tuple[float, tuple[Any, ...]], list[Any]]) -> None:
        """Merge folded partials into the stored windows (inside the caller's transaction)."""
        if not folded:
            return
        names = ["window_start", "window_end", "gkey"] + [g for g, _ in self.groups]
        sets = []
        for name, fn, _ in self.measures:
            q = f'"{name}"'
            if fn == "count":
                names.append(name)
                sets.append(f"{q} = {q} + excluded.{q}")
                continue
            if fn == "last":
                t = f'"{name}__t"'
                names += [name, f"{name}__t"]
                sets += [f"{q} = CASE WHEN {t} IS NULL OR excluded.{t} >= {t} THEN excluded.{q} "
                         f"ELSE {q} END",
                         f"{t} = CASE WHEN {t} IS NULL OR excluded.{t} >= {t} THEN "
                         f"excluded.{t} ELSE {t} END"]
                continue
            s, n = f'"{name}__s"', f'"{name}__n"'
            names += [name, f"{name}__s", f"{name}__n"]
            if fn in ("sum", "avg"):
                sets += [f"{s} = CASE WHEN excluded.{n} > 0 THEN coalesce({s}, 0) + "
                         f"excluded.{s} ELSE {s} END", f"{n} = {n} + excluded.{n}"]
                total = (f"(CASE WHEN excluded.{n} > 0 THEN coalesce({s}, 0) + excluded.{s} "
                         f"ELSE {s} END)")
                sets.append(f"{q} = {total}" if fn == "sum" else
                            f"{q} = {total} / nullif({n} + excluded.{n}, 0)")
            else:
                pick = "min" if fn == "min" else "max"
                sets += [f"{q} = CASE WHEN {q} IS NULL THEN excluded.{q} WHEN excluded.{q} "
                         f"IS NULL THEN {q} ELSE {pick}({q}, excluded.{q}) END",
                         f"{n} = {n} + excluded.{n}"]
        sql = (f'INSERT INTO "{self.table}" ({", ".join(chr(34) + x + chr(34) for x in names)})'
               f" VALUES ({', '.join('?' * len(names))}) ON CONFLICT (window_start, gkey) "
               f"DO UPDATE SET {', '.join(sets)}")
        rows = []
        w = self.cfg.window_s
        for (start, _), acc in folded.items():
            gkey = orjson.dumps(acc[0]).decode()
            row: list[Any] = [_ts(start), _ts(start + w), gkey, *acc[0]]
            for (_, fn, _), (cnt, val, n) in zip(self.measures, acc[1:], strict=True):
                if fn == "count":
                    row.append(cnt)
                elif fn == "last":
                    row += [val, cnt]  # the value, and its event time
                elif fn in ("sum", "avg"):
                    row += [val if fn == "sum" else (val / n if n else None), val, n]
                else:
                    row += [val, val, n]
            rows.append(row)
        c.executemany(sql, rows)


class WindowStore:
    """The SQLite file of one member's stream aggregates and rejected messages."""

    def __init__(self, path: Path, aggregates: list[Aggregate], streams: list[StreamConfig]
                 ) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o755)  # DuckDB workers (an unprivileged user) read it
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.lock = threading.Lock()
        self.aggregates = aggregates
        with self.lock:
            for a in aggregates:
                for ddl in a.ddl():
                    self.conn.execute(ddl)
            for st in streams:
                self.conn.execute(f'CREATE TABLE IF NOT EXISTS "{rejected_table(st.name)}" '
                                  "(received_at TIMESTAMP, reason TEXT, sample TEXT)")
            self.conn.execute("CREATE TABLE IF NOT EXISTS watermarks (dataset TEXT PRIMARY "
                              "KEY, watermark DOUBLE NOT NULL, late INTEGER NOT NULL)")
            self.conn.execute("CREATE TABLE IF NOT EXISTS positions (stream TEXT PRIMARY KEY, "
                              "seq INTEGER NOT NULL)")
            self.conn.execute("CREATE TABLE IF NOT EXISTS pending_pairs (pairs TEXT NOT NULL, "
                              "state BLOB NOT NULL)")
            self._positions: dict[str, int] = dict(
                self.conn.execute("SELECT stream, seq FROM positions"))
            for a in aggregates:
                row = self.conn.execute("SELECT watermark, late FROM watermarks WHERE "
                                        "dataset = ?", (a.cfg.dataset,)).fetchone()
                if row:
                    a.watermark, a.late = row
        path.chmod(0o644)
        self._sampled: dict[str, tuple[int, int]] = {}

    def position(self, stream: str) -> int:
        """The broker sequence number of the last message of ``stream`` committed (0)."""
        return self._positions.get(stream, 0)

    def commit(self, batches: dict[str, list[tuple[float, dict[str, Any]]]],
               rejected: dict[str, list[tuple[str, bytes]]],
               positions: dict[str, int] | None = None) -> None:
        """Fold each stream's records into its aggregates, keep samples of rejected
        messages and the streams' positions — one durable transaction."""
        with self.lock:
            c = self.conn
            c.execute("BEGIN IMMEDIATE")
            try:
                for a in self.aggregates:
                    recs = batches.get(a.cfg.stream)
                    if isinstance(recs, Columns):
                        a.upsert(c, a.fold_columns(recs))
                    elif recs:
                        a.upsert(c, a.fold(recs))
                        c.execute("INSERT OR REPLACE INTO watermarks VALUES (?, ?, ?)",
                                  (a.cfg.dataset, a.watermark, a.late))
                now = time.time()
                for stream, items in rejected.items():
                    keep = self._sample(stream, len(items), now)
                    rows = [(_ts(now), reason, payload[:200].decode("utf-8", "replace"))
                            for reason, payload in items[:keep]]
                    c.executemany(f'INSERT INTO "{rejected_table(stream)}" VALUES (?, ?, ?)',
                                  rows)
                for stream, seq in (positions or {}).items():
                    c.execute("INSERT OR REPLACE INTO positions VALUES (?, ?)", (stream, seq))
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")
            self._positions.update(positions or {})

    def save_pending(self, pairs: str, state: bytes) -> None:
        """Keep a pairs stage's unpaired records (on a clean stop) for the next start."""
        with self.lock:
            self.conn.execute("DELETE FROM pending_pairs WHERE pairs = ?", (pairs,))
            self.conn.execute("INSERT INTO pending_pairs VALUES (?, ?)", (pairs, state))

    def take_pending(self, pairs: str) -> bytes | None:
        """The unpaired records saved by :meth:`save_pending` (then forgotten)."""
        with self.lock:
            row = self.conn.execute("SELECT state FROM pending_pairs WHERE pairs = ?",
                                    (pairs,)).fetchone()
            self.conn.execute("DELETE FROM pending_pairs WHERE pairs = ?", (pairs,))
        return row[0] if row else None

    def _sample(self, stream: str, n: int, now: float) -> int:
        minute = int(now // 60)
        seen_minute, seen = self._sampled.get(stream, (minute, 0))
        if seen_minute != minute:
            seen = 0
        keep = max(0, min(n, REJECT_SAMPLES_PER_MINUTE - seen))
        self._sampled[stream] = (minute, seen + keep)
        return keep

    def close(self) -> None:
        with self.lock:
            self.conn.close()
