"""Tumbling windows on event time, kept in the window store of the stream's owner: the hub's
SQLite file of that member (embedded), or a schema of the hub's PostgreSQL store
(:mod:`zhongshu.streams.pgwindows`, when replicas share the streams).

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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from zhongshu.config import AggregateConfig, Column, StreamConfig, parse_measure
from zhongshu.streams import columnar
from zhongshu.streams.columnar import Columns

REJECT_SAMPLES_PER_MINUTE = 100
#: of each MQTT stream, the digests of this many messages committed last are kept: a message
#: the broker delivers again (its DUP flag set) is one of them if it was committed already
DIGESTS_KEPT = 10_000


@dataclass(frozen=True)
class Dialect:
    """How one store's SQL spells what the windows need."""

    param: str  # a query parameter's placeholder
    types: dict[str, str]  # a column's declared type → the store's
    least: str  # the scalar min() and max() of two values
    greatest: str


SQLITE = Dialect("?", {"BIGINT": "INTEGER", "INTEGER": "INTEGER", "DOUBLE": "DOUBLE",
                       "VARCHAR": "TEXT", "TIMESTAMP": "TIMESTAMP", "BOOLEAN": "BOOLEAN"},
                 "min", "max")
POSTGRES = Dialect("%s", {"BIGINT": "BIGINT", "INTEGER": "INTEGER",
                          "DOUBLE": "DOUBLE PRECISION", "VARCHAR": "TEXT",
                          "TIMESTAMP": "TIMESTAMP", "BOOLEAN": "BOOLEAN"}, "LEAST", "GREATEST")


@dataclass
class Batch:
    """What one commit of the stream service writes, in one transaction of a window store."""

    #: stream (or pairs) → its records, or the same as columns
    records: dict[str, Any] = field(default_factory=dict)
    #: stream → (reason, message) of each record rejected
    rejected: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)
    #: stream → the broker sequence numbers of its messages (NATS)
    seqs: dict[str, list[int]] = field(default_factory=dict)
    #: stream → the digests of its messages (MQTT, which numbers none)
    digests: dict[str, list[bytes]] = field(default_factory=dict)
    #: pairs → (key, event time, state) of each key whose waiting record changed
    waiting: dict[str, list[tuple[str, float, str]]] = field(default_factory=dict)
    #: pairs → the event time before which its waiting records are forgotten
    horizons: dict[str, float] = field(default_factory=dict)


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

    def ddl(self, d: Dialect = SQLITE, schema: str = "") -> list[str]:
        """The statements making its table (in ``schema``, when the store has schemas)."""
        t = d.types
        cols = ["window_start TIMESTAMP NOT NULL", "window_end TIMESTAMP NOT NULL",
                "gkey TEXT NOT NULL"]
        cols += [f'"{g}" {t.get(ty.upper(), "TEXT")}' for g, ty in self.groups]
        for name, fn, col in self.measures:
            if fn == "count" or col is None:  # count(*) is the only measure without a column
                cols.append(f'"{name}" {t["BIGINT"]} NOT NULL DEFAULT 0')
            elif fn == "last":
                cols += [f'"{name}" {t.get(self.types[col].upper(), "TEXT")}',
                         f'"{name}__t" {t["DOUBLE"]}']
            else:
                cols += [f'"{name}" {t["DOUBLE"]}', f'"{name}__s" {t["DOUBLE"]}',
                         f'"{name}__n" {t["BIGINT"]}']
        where = f'"{schema}".' if schema else ""
        return [f'CREATE TABLE IF NOT EXISTS {where}"{self.table}" ({", ".join(cols)}, '
                "PRIMARY KEY (window_start, gkey))",
                f'CREATE INDEX IF NOT EXISTS "{self.table}__end" ON {where}"{self.table}" '
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

    def upsert(self, c: Any, folded: dict[tuple[float, tuple[Any, ...]], list[Any]],
               d: Dialect = SQLITE, schema: str = "") -> None:
        """Merge folded partials into the stored windows (inside the caller's transaction,
        on connection ``c`` of a store speaking ``d``). Rows go in key order, so that two
        writers of one table always lock its rows in the same order."""
        if not folded:
            return
        names = ["window_start", "window_end", "gkey"] + [g for g, _ in self.groups]
        sets = []
        for name, fn, _ in self.measures:
            q, old = f'"{name}"', f'w."{name}"'
            if fn == "count":
                names.append(name)
                sets.append(f"{q} = {old} + excluded.{q}")
                continue
            if fn == "last":
                t, ot = f'"{name}__t"', f'w."{name}__t"'
                names += [name, f"{name}__t"]
                sets += [f"{q} = CASE WHEN {ot} IS NULL OR excluded.{t} >= {ot} THEN "
                         f"excluded.{q} ELSE {old} END",
                         f"{t} = CASE WHEN {ot} IS NULL OR excluded.{t} >= {ot} THEN "
                         f"excluded.{t} ELSE {ot} END"]
                continue
            s, n = f'"{name}__s"', f'"{name}__n"'
            os_, on = f'w."{name}__s"', f'w."{name}__n"'
            names += [name, f"{name}__s", f"{name}__n"]
            if fn in ("sum", "avg"):
                total = (f"(CASE WHEN excluded.{n} > 0 THEN coalesce({os_}, 0) + excluded.{s} "
                         f"ELSE {os_} END)")
                sets += [f"{s} = {total}", f"{n} = {on} + excluded.{n}"]
                sets.append(f"{q} = {total}" if fn == "sum" else
                            f"{q} = {total} / nullif({on} + excluded.{n}, 0)")
            else:
                pick = d.least if fn == "min" else d.greatest
                sets += [f"{q} = CASE WHEN {old} IS NULL THEN excluded.{q} WHEN excluded.{q} "
                         f"IS NULL THEN {old} ELSE {pick}({old}, excluded.{q}) END",
                         f"{n} = {on} + excluded.{n}"]
        where = f'"{schema}".' if schema else ""
        sql = (f'INSERT INTO {where}"{self.table}" AS w '
               f'({", ".join(chr(34) + x + chr(34) for x in names)})'
               f" VALUES ({', '.join([d.param] * len(names))}) ON CONFLICT (window_start, gkey) "
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
        rows.sort(key=lambda r: (r[0], r[2]))
        c.executemany(sql, rows)


class WindowStore:
    """The SQLite file of one member's stream aggregates and rejected messages, and what the
    stream service needs to resume after a restart: watermarks, which messages were
    committed, and the records of a pairs stage still waiting for their pair."""

    def __init__(self, path: Path, aggregates: list[Aggregate], streams: list[StreamConfig]
                 ) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o755)  # DuckDB workers (an unprivileged user) read it
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.lock = threading.RLock()
        self.aggregates = aggregates
        with self.lock:
            for a in aggregates:
                for ddl in a.ddl():
                    self.conn.execute(ddl)
            for st in streams:
                self.conn.execute(f'CREATE TABLE IF NOT EXISTS "{rejected_table(st.name)}" '
                                  "(received_at TIMESTAMP, reason TEXT, sample TEXT)")
            for ddl in _STATE_DDL:
                self.conn.execute(ddl)
            self._take_over_pending()
            self._positions: dict[str, int] = dict(
                self.conn.execute("SELECT stream, seq FROM positions"))
        self.load_state()
        path.chmod(0o644)
        self._sampled: dict[str, tuple[int, int]] = {}
        self._digests_n: dict[str, int] = {}

    def load_state(self) -> None:
        """Set each aggregate's watermark and late count to the stored ones."""
        with self.lock:
            for a in self.aggregates:
                row = self.conn.execute("SELECT watermark, late FROM watermarks WHERE "
                                        "dataset = ?", (a.cfg.dataset,)).fetchone()
                if row:
                    a.watermark, a.late = row

    def position(self, stream: str) -> int:
        """The broker sequence number up to which every message of ``stream`` is committed
        and acknowledged (0)."""
        return self._positions.get(stream, 0)

    def seen(self, stream: str, seqs: list[int]) -> set[int]:
        """Those of ``seqs`` (a NATS stream's sequence numbers) already committed."""
        floor = self.position(stream)
        return {q for q in seqs if q <= floor} | self._among(
            "seen_seqs", "seq", stream, [q for q in seqs if q > floor])

    def seen_digests(self, stream: str, digests: list[bytes]) -> set[bytes]:
        """Those of ``digests`` among the last :data:`DIGESTS_KEPT` committed of ``stream``."""
        return self._among("seen_digests", "digest", stream, digests)

    def _among(self, table: str, column: str, stream: str, values: list[Any]) -> set[Any]:
        """Those of ``values`` that ``table`` holds in ``column`` for ``stream``."""
        out: set[Any] = set()
        with self.lock:
            for i in range(0, len(values), 500):
                part = values[i:i + 500]
                out.update(v for (v,) in self.conn.execute(
                    f"SELECT {column} FROM {table} WHERE stream = ? AND {column} IN "
                    f"({','.join('?' * len(part))})", (stream, *part)))
        return out

    def forget(self, stream: str, floor: int) -> None:
        """Every message of ``stream`` up to ``floor`` is acknowledged: the broker will not
        deliver it again, so its sequence number need not be kept."""
        if floor <= self.position(stream):
            return
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("INSERT OR REPLACE INTO positions VALUES (?, ?)", (stream, floor))
            self.conn.execute("DELETE FROM seen_seqs WHERE stream = ? AND seq <= ?",
                              (stream, floor))
            self.conn.execute("COMMIT")
            self._positions[stream] = floor

    def commit(self, batch: Batch) -> None:
        """Fold each stream's records into its aggregates and keep what the batch says —
        samples of rejected messages, which messages it holds, the waiting records of pairs
        — in one durable transaction.

        Raises:
            Redelivered: one of its NATS messages was committed already (nothing is
                written; commit the others again).

        When it raises, nothing is written, and the folds have moved the aggregates'
        watermarks in memory: the caller takes the stored ones up again
        (:meth:`load_state`), as the stream service does after any failed commit.
        """
        with self.lock:
            c = self.conn
            c.execute("BEGIN IMMEDIATE")
            try:
                for stream, seqs in batch.seqs.items():
                    before = c.total_changes
                    c.executemany("INSERT OR IGNORE INTO seen_seqs VALUES (?, ?)",
                                  [(stream, q) for q in seqs])
                    if c.total_changes - before != len(seqs):
                        raise Redelivered(stream)
                for a in self.aggregates:
                    recs = batch.records.get(a.cfg.stream)
                    if isinstance(recs, Columns):
                        a.upsert(c, a.fold_columns(recs))
                    elif recs:
                        a.upsert(c, a.fold(recs))
                    else:
                        continue
                    c.execute("INSERT OR REPLACE INTO watermarks VALUES (?, ?, ?)",
                              (a.cfg.dataset, a.watermark, a.late))
                now = time.time()
                for stream, items in batch.rejected.items():
                    rows = sample_rows(self._sampled, stream, items, now)
                    c.executemany(f'INSERT INTO "{rejected_table(stream)}" VALUES (?, ?, ?)',
                                  rows)
                for stream, digests in batch.digests.items():
                    n = self._digest_count(stream)
                    c.executemany("INSERT OR REPLACE INTO seen_digests VALUES (?, ?, ?)",
                                  [(stream, n + i, d) for i, d in enumerate(digests, 1)])
                    c.execute("DELETE FROM seen_digests WHERE stream = ? AND n <= ?",
                              (stream, n + len(digests) - DIGESTS_KEPT))
                for pairs, waiting in batch.waiting.items():
                    c.executemany("INSERT OR REPLACE INTO pairs_waiting VALUES (?, ?, ?, ?)",
                                  [(pairs, *r) for r in waiting])
                for pairs, horizon in batch.horizons.items():
                    c.execute("DELETE FROM pairs_waiting WHERE pairs = ? AND t < ?",
                              (pairs, horizon))
            except BaseException:  # what the folds moved in memory, the caller takes up again
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")
            for stream, digests in batch.digests.items():
                self._digests_n[stream] = self._digests_n[stream] + len(digests)

    def _digest_count(self, stream: str) -> int:
        if stream not in self._digests_n:
            row = self.conn.execute("SELECT max(n) FROM seen_digests WHERE stream = ?",
                                    (stream,)).fetchone()
            self._digests_n[stream] = int(row[0] or 0)
        return self._digests_n[stream]

    def _take_over_pending(self) -> None:
        """Move what an older hub saved of its pairs stages on its last stop (one row per
        stage) into ``pairs_waiting`` (a row per key), in one transaction."""
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            for pairs, state in c.execute("SELECT pairs, state FROM pending_pairs").fetchall():
                c.executemany("INSERT OR IGNORE INTO pairs_waiting VALUES (?, ?, ?, ?)",
                              [(pairs, orjson.dumps(k).decode(), t,
                                orjson.dumps([t, *rest]).decode())
                               for k, t, *rest in orjson.loads(state)])
            c.execute("DELETE FROM pending_pairs")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    def waiting(self, pairs: str) -> list[tuple[str, str]]:
        """(key, state) of each record of a pairs stage waiting for its pair."""
        with self.lock:
            return self.conn.execute("SELECT key, state FROM pairs_waiting WHERE pairs = ?",
                                     (pairs,)).fetchall()

    def close(self) -> None:
        with self.lock:
            self.conn.close()


def _text(value: str) -> str:
    """``value`` fit for any store's text column (PostgreSQL refuses NUL characters)."""
    return value.replace("\x00", "\ufffd")


def sample_rows(sampled: dict[str, tuple[int, int]], stream: str,
                items: list[tuple[str, bytes]], now: float) -> list[tuple[str, str, str]]:
    """The rows of a rejected table for the (reason, message) ``items`` of ``stream`` kept as
    samples now (at most :data:`REJECT_SAMPLES_PER_MINUTE` a minute, counted in
    ``sampled``): when, why, and the message's first 200 bytes."""
    minute = int(now // 60)
    seen_minute, seen = sampled.get(stream, (minute, 0))
    if seen_minute != minute:
        seen = 0
    keep = max(0, min(len(items), REJECT_SAMPLES_PER_MINUTE - seen))
    sampled[stream] = (minute, seen + keep)
    return [(_ts(now), _text(reason), _text(payload[:200].decode("utf-8", "replace")))
            for reason, payload in items[:keep]]


class Redelivered(Exception):
    """A batch holds a message its store has committed already (a broker's redelivery)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.stream = stream


_STATE_DDL = [
    "CREATE TABLE IF NOT EXISTS watermarks (dataset TEXT PRIMARY KEY, watermark DOUBLE NOT "
    "NULL, late INTEGER NOT NULL)",
    # up to seq, every message of the stream is committed and acknowledged
    "CREATE TABLE IF NOT EXISTS positions (stream TEXT PRIMARY KEY, seq INTEGER NOT NULL)",
    # committed messages above the stream's position, which the broker may deliver again
    "CREATE TABLE IF NOT EXISTS seen_seqs (stream TEXT NOT NULL, seq INTEGER NOT NULL, "
    "PRIMARY KEY (stream, seq))",
    "CREATE TABLE IF NOT EXISTS seen_digests (stream TEXT NOT NULL, n INTEGER NOT NULL, "
    "digest BLOB NOT NULL, PRIMARY KEY (stream, n))",
    "CREATE INDEX IF NOT EXISTS seen_digests__digest ON seen_digests (stream, digest)",
    "CREATE TABLE IF NOT EXISTS pairs_waiting (pairs TEXT NOT NULL, key TEXT NOT NULL, "
    "t DOUBLE NOT NULL, state TEXT NOT NULL, PRIMARY KEY (pairs, key))",
    # what hubs before pairs_waiting saved of a pairs stage on a clean stop
    "CREATE TABLE IF NOT EXISTS pending_pairs (pairs TEXT NOT NULL, state BLOB NOT NULL)",
]
