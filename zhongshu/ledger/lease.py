"""The sequencer's lease: which one of the hub's replicas is *the* sequencer of a log kept in
PostgreSQL, held as a session-level advisory lock on a connection of its own. (The same
mechanism, under another lock, says which replica folds the streams: :data:`STREAMS`.)

The lock lives as long as the holder's connection: a holder that exits, crashes or is
killed loses it as soon as the server sees the connection close (at once for a process
killed on a live machine: its kernel closes the socket), and the next replica polling
:meth:`Lease.take` holds it within one poll. A holder whose machine vanishes is noticed by
the server's TCP keepalives, set short on the lease's connection (:data:`KEEPALIVE`), so the
lease moves within about ten seconds even then.

The lease says who leads; it is not what keeps the log whole. Every append transaction takes
the store's own lock (:data:`~zhongshu.ledger.postgres.APPEND_LOCK`) and reads the log's
size under it, so even a holder that lost its lease without noticing yet cannot hand out an
index twice.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

__all__ = ["CLIENT_KEEPALIVE", "KEEPALIVE", "SEQUENCER", "STREAMS", "Lease"]

SEQUENCER = (0x5A53_0020, 0)  # the advisory lock (namespace, key) of the sequencer's lease
STREAMS = (0x5A53_0030, 0)  # that of the streams' lease: which replica folds the streams
KEEPALIVE = {"tcp_keepalives_idle": 3, "tcp_keepalives_interval": 1,
             "tcp_keepalives_count": 3}  # the server gives up on a silent holder after ~6 s
#: and the holder gives up on a silent server as soon (libpq's side of the same socket)
CLIENT_KEEPALIVE: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 3,
                                    "keepalives_interval": 1, "keepalives_count": 3,
                                    "tcp_user_timeout": 10_000}


class Lease:
    """One contender for a lease (by default the sequencer's) on the database at ``url``.

    Not thread-safe: one thread takes, checks and releases it.
    """

    def __init__(self, url: str, lock: tuple[int, int] = SEQUENCER) -> None:
        self._url = url
        self._lock = lock
        self._con: psycopg.Connection[Any] | None = None
        self._held = False

    def _connection(self) -> psycopg.Connection[Any]:
        if self._con is None or self._con.closed:
            self._con = psycopg.connect(self._url, autocommit=True, connect_timeout=5,
                                        application_name="zhongshu-lease", **CLIENT_KEEPALIVE)
            for name, value in KEEPALIVE.items():
                self._con.execute(f"SET {name} = {int(value)}")
            self._held = False
        return self._con

    def try_take(self) -> bool:
        """Take the lease if no one holds it; whether this contender holds it now.

        Raises:
            psycopg.OperationalError: the database cannot be reached.
        """
        if self.held():
            return True
        row = self._connection().execute("SELECT pg_try_advisory_lock(%s, %s)",
                                         self._lock).fetchone()
        self._held = bool(row and row[0])
        return self._held

    def take(self, timeout_s: float | None = None, poll_s: float = 0.2) -> bool:
        """Wait until this contender holds the lease (or ``timeout_s`` has passed: False).

        The database being unreachable counts as not holding it: the wait goes on.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            try:
                if self.try_take():
                    return True
            except psycopg.OperationalError:
                self._drop()
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)

    def held(self) -> bool:
        """Whether this contender still holds the lease (its connection answers)."""
        if not self._held or self._con is None or self._con.closed:
            return False
        try:
            self._con.execute("SELECT 1")
        except psycopg.Error:
            self._drop()
            return False
        return True

    def holder(self) -> int | None:
        """The server process id of the lease's holder's connection, or None when free.

        Raises:
            psycopg.OperationalError: the database cannot be reached.
        """
        ns, key = self._lock
        row = self._connection().execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
            "database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 2",
            (ns & 0xFFFF_FFFF, key & 0xFFFF_FFFF)).fetchone()
        return None if row is None else int(row[0])

    def holds_in(self, cur: Any) -> bool:
        """Whether this contender holds the lease, asked inside the transaction of ``cur``
        (another connection to the same database): a fence, so that what that transaction
        writes commits only while this contender still leads."""
        con = self._con  # the lease's own thread may drop it meanwhile
        if not self._held or con is None or con.closed:
            return False
        try:
            pid = con.info.backend_pid
        except psycopg.Error:
            return False
        ns, key = self._lock
        cur.execute("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
                    "pid = %s AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND "
                    "objsubid = 2", (pid, ns & 0xFFFF_FFFF, key & 0xFFFF_FFFF))
        return cur.fetchone() is not None

    def _drop(self) -> None:
        if self._con is not None:
            try:
                self._con.close()
            except psycopg.Error:
                pass
        self._con, self._held = None, False

    def release(self) -> None:
        """Give the lease up (closing its connection: the server frees the lock)."""
        self._drop()
