"""A member's window store in the hub's PostgreSQL store, for replicas sharing the streams.

One schema per member (:func:`~zhongshu.config.streams.window_schema`) holds the same tables
as the embedded SQLite file (:class:`~zhongshu.streams.windows.WindowStore`): a table per
aggregate, one of rejected messages per stream, and the state the stream service resumes
from. Its tables follow the city's configuration, so the stream service makes the missing
ones when it starts (under an advisory lock: replicas starting together do not race); the
hub's own tables stay with the versioned migrations.

Every commit is one transaction under the member's advisory lock, and checks — in that same
transaction — that the committing replica still holds the streams' lease (``fence``): a
replica that lost it without noticing commits nothing. A NATS message's sequence number is
inserted in that transaction too, so one committed already (by a replica that died before
acknowledging it) refuses the whole batch (:class:`~zhongshu.streams.windows.Redelivered`).
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from zhongshu.config import StreamConfig
from zhongshu.errors import ConfigError
from zhongshu.streams.columnar import Columns
from zhongshu.streams.windows import (
    DIGESTS_KEPT,
    POSTGRES,
    Aggregate,
    Batch,
    Redelivered,
    rejected_table,
    sample_rows,
)

__all__ = ["LOCK_WINDOWS", "LeaseLost", "PostgresWindowStore"]

LOCK_WINDOWS = 0x5A53_0031  # advisory lock namespace: one member's window store
#: a commit never waits for ever: not on another's lock, not on a silent server, and the
#: server ends a transaction whose replica went silent (its lock is then free again)
SESSION = ("-c lock_timeout=10000 -c statement_timeout=60000 "
           "-c idle_in_transaction_session_timeout=10000")
#: libpq's side of the connection (as the lease's): a vanished server is given up in seconds
CLIENT_KEEPALIVE: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 3,
                                    "keepalives_interval": 1, "keepalives_count": 3,
                                    "tcp_user_timeout": 10_000}
MAX_NAME = 58  # bytes of a table's name (PostgreSQL keeps 63; its index adds "__end")


class LeaseLost(Exception):
    """The committing replica no longer holds the streams' lease: it must stop folding."""


def _key(text: str) -> int:
    return zlib.crc32(text.encode()) - 2**31


class PostgresWindowStore:
    """One member's windows in schema ``schema`` of the PostgreSQL database at ``url``;
    ``fence(connection)`` (when given) is run inside every commit and raises
    :class:`LeaseLost` when this replica must not commit; ``reader`` (a role) is granted
    reading the schema, and nothing else."""

    def __init__(self, url: str, schema: str, owner: str, aggregates: list[Aggregate],
                 streams: list[StreamConfig], fence: Any = None, reader: str = "") -> None:
        self.url, self.schema, self.owner = url, schema, owner
        self.aggregates = aggregates
        self.fence = fence
        self.lock = threading.RLock()
        self._con: psycopg.Connection[Any] | None = None
        self._positions: dict[str, int] = {}
        self._sampled: dict[str, tuple[int, int]] = {}
        self._digests_n: dict[str, int] = {}
        for a in aggregates:
            if len(a.table.encode()) > MAX_NAME:
                raise ConfigError(f"aggregate `{a.cfg.dataset}`: its name is too long for a "
                                  f"PostgreSQL table ({MAX_NAME} bytes at most with the '.'); "
                                  "shorten it")
        q = f'"{schema}"'
        ddl = [f"CREATE SCHEMA IF NOT EXISTS {q}"]
        for a in aggregates:
            ddl += a.ddl(POSTGRES, schema)
        ddl += [f'CREATE TABLE IF NOT EXISTS {q}."{rejected_table(st.name)}" '
                "(received_at TIMESTAMP, reason TEXT, sample TEXT)" for st in streams]
        ddl += [
            f"CREATE TABLE IF NOT EXISTS {q}.watermarks (dataset TEXT PRIMARY KEY, "
            "watermark DOUBLE PRECISION NOT NULL, late BIGINT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {q}.positions (stream TEXT PRIMARY KEY, "
            "seq BIGINT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {q}.seen_seqs (stream TEXT NOT NULL, "
            "seq BIGINT NOT NULL, PRIMARY KEY (stream, seq))",
            f"CREATE TABLE IF NOT EXISTS {q}.seen_digests (stream TEXT NOT NULL, "
            "n BIGINT NOT NULL, digest BYTEA NOT NULL, PRIMARY KEY (stream, n))",
            f"CREATE INDEX IF NOT EXISTS seen_digests__digest ON {q}.seen_digests "
            "(stream, digest)",
            f"CREATE TABLE IF NOT EXISTS {q}.pairs_waiting (pairs TEXT NOT NULL, "
            "key TEXT NOT NULL, t DOUBLE PRECISION NOT NULL, state TEXT NOT NULL, "
            "PRIMARY KEY (pairs, key))"]
        if reader:
            ddl += [f'GRANT USAGE ON SCHEMA {q} TO "{reader}"',
                    f'GRANT SELECT ON ALL TABLES IN SCHEMA {q} TO "{reader}"']
        if len(schema.encode()) > 63:
            raise ConfigError(f"member `{owner}`: its name is too long for a PostgreSQL "
                              "schema of its windows; shorten it")
        try:
            with self._transaction(fenced=False) as c:
                for stmt in ddl:
                    c.execute(stmt)
        except (psycopg.errors.UndefinedObject, psycopg.errors.InsufficientPrivilege) as e:
            self._drop()
            raise ConfigError(f"[store] windows_user `{reader}` cannot be granted reading the "
                              f"stream windows ({type(e).__name__}): make the role first "
                              f"(CREATE ROLE {reader} LOGIN PASSWORD '…'), or correct "
                              "windows_user in city.toml") from None
        self.load_state()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._con is None or self._con.closed or self._con.broken:
            self._con = psycopg.connect(self.url, autocommit=True, connect_timeout=5,
                                        application_name="zhongshu-streams",
                                        options=SESSION, **CLIENT_KEEPALIVE)
        return self._con

    @contextmanager
    def _transaction(self, fenced: bool = True) -> Iterator[psycopg.Cursor[Any]]:
        """One transaction under the member's lock (fenced: only while this replica holds
        the lease). A failed connection is dropped for the next call."""
        con = self._connection()
        try:
            with con.transaction(), con.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                            (LOCK_WINDOWS, _key(self.owner)))
                if fenced and self.fence is not None:
                    self.fence(cur)
                yield cur
        except psycopg.OperationalError:
            self._drop()
            raise

    def _drop(self) -> None:
        if self._con is not None:
            try:
                self._con.close()
            except psycopg.Error:
                pass
        self._con = None

    def _rows(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            return self._connection().execute(sql, args).fetchall()
        except psycopg.OperationalError:
            self._drop()
            raise

    def load_state(self) -> None:
        """Set each aggregate's watermark and late count, and the streams' positions, to the
        stored ones (when this replica starts folding: another may have folded meanwhile).
        Read under the member's lock: a commit of the replica that led before, under way,
        ends first (one starting now is refused by its fence)."""
        q = f'"{self.schema}"'
        with self.lock, self._transaction(fenced=False) as c:
            c.execute(f"SELECT dataset, watermark, late FROM {q}.watermarks")
            marks = {d: (w, n) for d, w, n in c.fetchall()}
            c.execute(f"SELECT stream, seq FROM {q}.positions")
            positions = dict(c.fetchall())
        for a in self.aggregates:
            a.watermark, a.late = marks.get(a.cfg.dataset, (0.0, 0))
        self._positions = positions
        self._digests_n = {}

    def position(self, stream: str) -> int:
        """The sequence number up to which every message of ``stream`` is acknowledged."""
        return self._positions.get(stream, 0)

    def seen(self, stream: str, seqs: list[int]) -> set[int]:
        """Those of ``seqs`` (a NATS stream's sequence numbers) already committed."""
        floor = self.position(stream)
        out = {q for q in seqs if q <= floor}
        rest = [q for q in seqs if q > floor]
        if rest:
            with self.lock:
                out.update(q for (q,) in self._rows(
                    f'SELECT seq FROM "{self.schema}".seen_seqs WHERE stream = %s AND '
                    "seq = ANY(%s)", (stream, rest)))
        return out

    def seen_digests(self, stream: str, digests: list[bytes]) -> set[bytes]:
        """Those of ``digests`` among the last :data:`DIGESTS_KEPT` committed of ``stream``."""
        if not digests:
            return set()
        with self.lock:
            return {bytes(d) for (d,) in self._rows(
                f'SELECT digest FROM "{self.schema}".seen_digests WHERE stream = %s AND '
                "digest = ANY(%s)", (stream, digests))}

    def forget(self, stream: str, floor: int) -> None:
        """Every message of ``stream`` up to ``floor`` is acknowledged: forget their numbers."""
        if floor <= self.position(stream):
            return
        q = f'"{self.schema}"'
        with self.lock, self._transaction() as c:
            c.execute(f"INSERT INTO {q}.positions VALUES (%s, %s) ON CONFLICT (stream) DO "
                      "UPDATE SET seq = GREATEST(positions.seq, excluded.seq)", (stream, floor))
            c.execute(f"DELETE FROM {q}.seen_seqs WHERE stream = %s AND seq <= %s",
                      (stream, floor))
        self._positions[stream] = floor

    def commit(self, batch: Batch) -> None:
        """As :meth:`WindowStore.commit <zhongshu.streams.windows.WindowStore.commit>`.

        Raises:
            Redelivered: one of its NATS messages was committed already.
            LeaseLost: this replica no longer holds the streams' lease.
            psycopg.Error: the store failed (nothing is written).
        """
        q = f'"{self.schema}"'
        with self.lock:
            try:
                # folded first: the transaction then only writes (a long fold inside it would
                # hold the member's lock, and outlast the server's idle-in-transaction limit)
                folds = []
                for a in self.aggregates:
                    recs = batch.records.get(a.cfg.stream)
                    if isinstance(recs, Columns):
                        folds.append((a, a.fold_columns(recs)))
                    elif recs:
                        folds.append((a, a.fold(recs)))
                marks = [(a.cfg.dataset, a.watermark, a.late) for a, _ in folds]
                with self._transaction() as c:
                    for stream, seqs in batch.seqs.items():
                        n = c.execute(f"INSERT INTO {q}.seen_seqs SELECT %s, unnest(%s::bigint[]) "
                                      "ON CONFLICT DO NOTHING", (stream, seqs)).rowcount
                        if n != len(seqs):
                            raise Redelivered(stream)
                    for a, folded in folds:
                        a.upsert(c, folded, POSTGRES, self.schema)
                    if marks:
                        c.executemany(f"INSERT INTO {q}.watermarks VALUES (%s, %s, %s) ON "
                                      "CONFLICT (dataset) DO UPDATE SET watermark = "
                                      "excluded.watermark, late = excluded.late", marks)
                    now = time.time()
                    for stream, items in batch.rejected.items():
                        rows = sample_rows(self._sampled, stream, items, now)
                        if rows:
                            c.executemany(f'INSERT INTO {q}."{rejected_table(stream)}" '
                                          "VALUES (%s, %s, %s)", rows)
                    for stream, digests in batch.digests.items():
                        n0 = self._digest_count(c, stream)
                        c.execute(f"INSERT INTO {q}.seen_digests SELECT %s, n0 + o, d FROM "
                                  "unnest(%s::bytea[]) WITH ORDINALITY AS u(d, o), "
                                  "(SELECT %s::bigint AS n0) AS b ON CONFLICT (stream, n) DO "
                                  "UPDATE SET digest = excluded.digest",
                                  (stream, digests, n0))
                        c.execute(f"DELETE FROM {q}.seen_digests WHERE stream = %s AND n <= %s",
                                  (stream, n0 + len(digests) - DIGESTS_KEPT))
                    for pairs, waiting in batch.waiting.items():
                        if waiting:
                            c.execute(
                                f"INSERT INTO {q}.pairs_waiting SELECT %s, k, t, s FROM "
                                "unnest(%s::text[], %s::float8[], %s::text[]) AS u(k, t, s) "
                                "ON CONFLICT (pairs, key) DO UPDATE SET t = excluded.t, "
                                "state = excluded.state",
                                (pairs, [r[0] for r in waiting], [r[1] for r in waiting],
                                 [r[2] for r in waiting]))
                    for pairs, horizon in batch.horizons.items():
                        c.execute(f"DELETE FROM {q}.pairs_waiting WHERE pairs = %s AND t < %s",
                                  (pairs, horizon))
            except BaseException:  # what the folds moved in memory, the caller takes up again
                self._digests_n = {}
                raise
            for stream, digests in batch.digests.items():
                self._digests_n[stream] += len(digests)

    def _digest_count(self, c: psycopg.Cursor[Any], stream: str) -> int:
        if stream not in self._digests_n:
            row = c.execute(f'SELECT max(n) FROM "{self.schema}".seen_digests WHERE '
                            "stream = %s", (stream,)).fetchone()
            self._digests_n[stream] = int(row[0] or 0) if row else 0
        return self._digests_n[stream]

    def waiting(self, pairs: str) -> list[tuple[str, str]]:
        """(key, state) of each record of a pairs stage waiting for its pair (read under the
        member's lock, as :meth:`load_state`)."""
        with self.lock, self._transaction(fenced=False) as c:
            c.execute(f'SELECT key, state FROM "{self.schema}".pairs_waiting WHERE pairs = %s',
                      (pairs,))
            return [(k, s) for k, s in c.fetchall()]

    def close(self) -> None:
        with self.lock:
            self._drop()
