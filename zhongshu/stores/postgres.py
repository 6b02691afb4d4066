"""The stores of a scaled-out hub: one PostgreSQL database shared by every replica.

The same contracts as :mod:`zhongshu.stores.sqlite` (``tests/stores/test_contract.py``), with
what several hub processes need: a nonce spent through one replica is refused by every other,
a session opened on one is seen by all, a grant's rate limit and a consumer's lookup budget
count every replica's hits. Each step that reads and then writes runs in one transaction
under a PostgreSQL advisory lock of its key, so two replicas never both pass a check.

The tables are made by the versioned migrations (:mod:`zhongshu.stores.schema`, applied by
``zhongshu db upgrade``), never by opening a store. One :class:`Database` (a small pool of
connections in autocommit mode) serves every store of a process; a store given a URL instead
opens a database of its own and closes it with itself.

The URL's password never appears in a message: a database is named by :attr:`Database.label`
(``postgresql://host:port/dbname``).
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from zhongshu.errors import StoreUnavailable
from zhongshu.stores.base import ChangeHook

__all__ = ["Database", "PostgresLookupCounts", "PostgresMetadataStore", "PostgresNonceStore",
           "PostgresRateCounters", "PostgresSessionStore", "label_of"]

# advisory lock namespaces (the first of pg_advisory_xact_lock's two int4 keys)
LOCK_CHANGES = 0x5A53_0001  # change numbers: changes commit in their order
LOCK_RATE = 0x5A53_0002  # a rate counter's key
LOCK_LOOKUPS = 0x5A53_0003  # a lookup budget's key
_PURGE_EVERY = 256  # nonces spent between two sweeps of the expired ones
AWAY_RETRY_S = 1.0  # once the server failed: calls fail at once for this long, then one tries
AWAY_PROBE_S = 2.0  # how long that call waits for a connection


def label_of(url: str) -> str:
    """A database's name fit for messages and logs: scheme, host, port and database, never
    the user's password (nor the user).

    >>> label_of("postgresql://hub:s3cret@db.example:5433/city?sslmode=require")
    'postgresql://db.example:5433/city'
    >>> label_of("postgresql:///city")
    'postgresql://localhost:5432/city'
    """
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(an address that does not parse)"
    host = str(parts.get("host") or "localhost").split(",")[0]
    if host.startswith("/"):
        host = "localhost"
    port = str(parts.get("port") or "5432").split(",")[0]
    return f"postgresql://{host}:{port}/{parts.get('dbname') or parts.get('user') or ''}"


def _reason(error: psycopg.Error) -> str:
    """What the server or libpq said, without the address (already in the label): its last
    line, e.g. ``FATAL:  database "city" does not exist``. libpq never repeats a password."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    said = [ln.rpartition(" failed: ")[2] for ln in lines if " failed: " in ln]
    return said[-1] if said else (lines[-1] if lines else type(error).__name__)


def _key(text: str) -> int:
    """A signed 32-bit lock key of ``text`` (the second of an advisory lock's two keys)."""
    return zlib.crc32(text.encode()) - 2**31


class Database:
    """One PostgreSQL database of the hub's state: a small pool of autocommit connections,
    safe to share between threads and between the stores of one process.

    Raises:
        StoreUnavailable: (on opening) the database cannot be reached within ``timeout_s``.
    """

    def __init__(self, url: str, *, max_size: int = 8, timeout_s: float = 10.0) -> None:
        self.label = label_of(url)
        self._url = url
        self._away_since: float | None = None  # the server stopped answering (monotonic)
        self._retry_at = 0.0
        self._probing = threading.Lock()  # one call at a time tries a server that was away
        self._connect_errors = 0
        try:  # one connection first: a wrong address or password fails at once, saying why
            psycopg.connect(url, connect_timeout=max(1, round(timeout_s))).close()
        except psycopg.ProgrammingError:  # libpq quotes the part it cannot parse: a password
            raise StoreUnavailable(f"the hub's store URL does not parse ({self.label}); write "
                                   "it as postgresql://user@host:port/database, with any "
                                   "password percent-encoded or in password_secret") from None
        except psycopg.Error as e:
            raise StoreUnavailable(f"the hub's store {self.label} cannot be reached: "
                                   f"{_reason(e)}") from None
        self.pool = ConnectionPool(url, min_size=1, max_size=max_size, open=False,
                                   kwargs={"autocommit": True}, timeout=timeout_s,
                                   name="zhongshu-store")
        try:
            self.pool.open(wait=True, timeout=timeout_s)
        except PoolTimeout:
            self.pool.close()
            raise StoreUnavailable(f"the hub's store {self.label} cannot be reached; check "
                                   "that PostgreSQL runs there and accepts this hub") from None

    @property
    def url(self) -> str:
        """The connection URL, password included (for a child process; never to be shown)."""
        return self._url

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection of the pool, in autocommit mode, for the ``with`` block.

        Once the server has stopped answering — a connection broke, or none could be opened
        — callers are not made to wait for it: for ``AWAY_RETRY_S`` every call fails at
        once, then one call tries again (waiting at most ``AWAY_PROBE_S``), so while the
        store is away a request fails within a moment instead of after every pool timeout
        on its way. A statement's own error (a timeout, a deadlock, a full disk) on a
        connection that still works is only that statement's failure.

        Raises:
            StoreUnavailable: no connection could be had in time, or the server went away.
        """
        probe = False
        if self._away_since is not None:
            if time.monotonic() < self._retry_at or not self._probing.acquire(blocking=False):
                raise StoreUnavailable(f"the hub's store {self.label} does not answer (for "
                                       f"{time.monotonic() - self._away_since:.0f} s)")
            probe = True
        con = None
        try:
            with self.pool.connection(timeout=AWAY_PROBE_S if probe else None) as con:
                self._away_since = None
                yield con
        except PoolTimeout:
            if probe or self._failing_to_connect():
                self._went_away()
            raise StoreUnavailable(f"the hub's store {self.label} did not answer in "
                                   "time") from None
        except psycopg.OperationalError as e:
            if con is not None and (con.broken or con.closed) and not self._reachable():
                self._went_away()  # not one stale connection: the server is away
            raise StoreUnavailable(f"the hub's store {self.label} failed: "
                                   f"{type(e).__name__}") from None
        finally:
            if probe:
                self._probing.release()

    def _reachable(self) -> bool:
        """Whether a new connection opens now (within ``AWAY_PROBE_S``)."""
        try:
            psycopg.connect(self._url, connect_timeout=max(1, round(AWAY_PROBE_S))).close()
        except psycopg.Error:
            return False
        return True

    def _failing_to_connect(self) -> bool:
        """Whether the pool failed to open a connection since last asked (a pool that is
        merely busy has not)."""
        errors = int(self.pool.get_stats().get("connections_errors", 0))
        failed, self._connect_errors = errors > self._connect_errors, errors
        return failed

    def _went_away(self) -> None:
        now = time.monotonic()
        if self._away_since is None:
            self._away_since = now
        self._retry_at = now + AWAY_RETRY_S

    @property
    def away(self) -> bool:
        """Whether the server failed to answer the last call that tried it."""
        return self._away_since is not None

    @contextmanager
    def transaction(self, *locks: tuple[int, int], durable: bool = True
                    ) -> Iterator[psycopg.Connection[Any]]:
        """One transaction holding the given advisory locks (``(namespace, key)`` pairs,
        taken in order, released at commit or rollback). Not ``durable``: its commit does
        not wait for the WAL to reach the disk (a crash of the server may lose its last
        fraction of a second; it stays atomic and isolated)."""
        with self.connection() as con, con.transaction():
            if not durable:
                con.execute("SET LOCAL synchronous_commit = off")
            for ns, key in locks:
                con.execute("SELECT pg_advisory_xact_lock(%s, %s)", (ns, key))
            yield con

    def close(self) -> None:
        """Close every connection."""
        self.pool.close()


class _Postgres:
    """A store over a :class:`Database` (its own, when given a URL)."""

    def __init__(self, db: Database | str) -> None:
        self._owned = isinstance(db, str)
        self.db = Database(db) if isinstance(db, str) else db

    def _one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self.db.connection() as con:
            return con.execute(sql, args).fetchone()

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.db.connection() as con:
            return con.execute(sql, args).fetchall()

    def _run(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; the rows it changed."""
        with self.db.connection() as con:
            return con.execute(sql, args).rowcount

    def _insert_once(self, what: str, sql: str, args: Sequence[Any]) -> None:
        """Run an INSERT of a row that must be new; a duplicate key is a ``ValueError``."""
        try:
            self._run(sql, args)
        except pg_errors.UniqueViolation:
            raise ValueError(f"this {what} already exists") from None

    def close(self) -> None:
        """Close the database if this store opened it (a shared one is closed by its owner)."""
        if self._owned:
            self.db.close()


class PostgresMetadataStore(_Postgres):
    """The metadata store in PostgreSQL, shared by every replica of the hub."""

    def __init__(self, db: Database | str) -> None:
        super().__init__(db)
        # called with (actor, action, subject, details) after each governance change
        self.on_change: ChangeHook | None = None

    # --- members and tokens ---------------------------------------------------------------

    def upsert_member(self, name: str, kind: str, title: str, roles: list[str]) -> None:
        """Record a member as declared in the city configuration."""
        self._run("INSERT INTO members (name, kind, title, roles) VALUES (%s, %s, %s, %s) "
                  "ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, "
                  "title = excluded.title, roles = excluded.roles",
                  (name, kind, title, json.dumps(roles)))

    def add_token(self, token_hash: str, member: str, label: str = "",
                  expires_at: float | None = None) -> None:
        """Store the hash of a newly issued token."""
        self._insert_once("token", "INSERT INTO tokens (token_hash, member, label, created_at, "
                          "expires_at) VALUES (%s, %s, %s, %s, %s)",
                          (token_hash, member, label, time.time(), expires_at))

    def token_member(self, token_hash: str, now: float | None = None) -> str | None:
        """The member holding a valid (unrevoked, unexpired) token with this hash, or None."""
        now = time.time() if now is None else now
        row = self._one("SELECT member FROM tokens WHERE token_hash = %s AND revoked_at IS NULL "
                        "AND (expires_at IS NULL OR expires_at > %s)", (token_hash, now))
        return str(row[0]) if row else None

    def revoke_tokens(self, member: str, prefix: str | None = None) -> int:
        """Revoke a member's tokens (all, or those whose hash starts with ``prefix``; ``%``
        in it is dropped, as by the embedded store); return how many were revoked."""
        sql = "UPDATE tokens SET revoked_at = %s WHERE member = %s AND revoked_at IS NULL"
        args: list[Any] = [time.time(), member]
        if prefix:
            start = prefix.replace("%", "")
            sql += " AND left(token_hash, %s) = %s"
            args += [len(start), start]
        return self._run(sql, args)

    def add_key(self, key_id: str, member: str, public_key: bytes) -> None:
        """Register a member's Ed25519 public key (32 raw bytes) under ``key_id``."""
        self._insert_once("key", "INSERT INTO keys (key_id, member, public_key, created_at) "
                          "VALUES (%s, %s, %s, %s)", (key_id, member, public_key, time.time()))

    def key(self, key_id: str) -> tuple[str, bytes] | None:
        """(member, public key) of an unrevoked key, or None."""
        row = self._one("SELECT member, public_key FROM keys WHERE key_id = %s AND "
                        "revoked_at IS NULL", (key_id,))
        return (str(row[0]), bytes(row[1])) if row else None

    # --- governance changes -----------------------------------------------------------------

    def record_change(self, actor: str, action: str, subject: str,
                      details: dict[str, Any] | None = None) -> int:
        """Record who changed what; returns the change's sequence number. Numbers are given
        under a lock, so a change is visible only after every change numbered before it.

        Details never hold a secret: tokens appear by their id (hash prefix) only.
        """
        text = json.dumps(details or {}, default=str)
        with self.db.transaction((LOCK_CHANGES, 0)) as con:
            row = con.execute(
                "INSERT INTO changes (seq, at, actor, action, subject, details) SELECT "
                "coalesce(max(seq), 0) + 1, %s, %s, %s, %s, %s FROM changes RETURNING seq",
                (time.time(), actor, action, subject, text)).fetchone()
        if self.on_change is not None:  # the hub's ledger, when one is attached
            self.on_change(actor, action, subject, json.loads(text))
        return int(row[0]) if row else 0

    def changes(self, since: int = 0) -> list[dict[str, Any]]:
        """Governance changes after sequence number ``since``, oldest first."""
        rows = self._all("SELECT seq, at, actor, action, subject, details FROM changes "
                         "WHERE seq > %s ORDER BY seq", (since,))
        return [{"seq": int(r[0]), "at": r[1], "actor": r[2], "action": r[3],
                 "subject": r[4], "details": json.loads(r[5])} for r in rows]

    def version(self) -> int:
        """The latest change's sequence number (0 when none): grants reload when it moves."""
        row = self._one("SELECT max(seq) FROM changes")
        return int(row[0] or 0) if row else 0

    def add_grant(self, grant_id: str, owner: str, spec: dict[str, Any], actor: str) -> None:
        """Store a grant made through the CLI or the API."""
        self._insert_once("grant", "INSERT INTO grants (id, owner, spec, created_by, "
                          "created_at) VALUES (%s, %s, %s, %s, %s)",
                          (grant_id, owner, json.dumps(spec, default=str), actor, time.time()))

    def revoke_grant(self, grant_id: str, actor: str) -> bool:
        """Revoke a stored grant; False when there is no such active grant."""
        return self._run("UPDATE grants SET revoked_at = %s, revoked_by = %s WHERE id = %s "
                         "AND revoked_at IS NULL", (time.time(), actor, grant_id)) > 0

    def stored_grants(self) -> list[tuple[str, str, dict[str, Any], str]]:
        """Active stored grants, oldest first: (id, owner, spec, created_by)."""
        rows = self._all("SELECT id, owner, spec, created_by FROM grants WHERE revoked_at IS "
                         "NULL ORDER BY n")
        return [(r[0], r[1], json.loads(r[2]), r[3]) for r in rows]

    def members(self) -> list[dict[str, Any]]:
        """Members with their count of valid tokens."""
        rows = self._all(
            "SELECT m.name, m.kind, m.title, m.roles, (SELECT count(*) FROM tokens t WHERE "
            "t.member = m.name AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR "
            "t.expires_at > %s)) FROM members m ORDER BY m.name COLLATE \"C\"", (time.time(),))
        return [{"name": r[0], "kind": r[1], "title": r[2], "roles": r[3], "tokens": int(r[4])}
                for r in rows]

    # --- dataset status -------------------------------------------------------------------

    def record_dataset(self, name: str, owner: str, source: str, listed: bool, status: str,
                       reason: str, observed: dict[str, str]) -> None:
        """Record a dataset's last check; ``observed`` is merged over what was seen before
        (in one statement: two replicas checking at once lose neither's columns)."""
        self._run(
            "INSERT INTO datasets (name, owner, source, listed, status, reason, observed, "
            "checked_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE "
            "SET owner = excluded.owner, source = excluded.source, listed = excluded.listed, "
            "status = excluded.status, reason = excluded.reason, "
            "observed = datasets.observed || excluded.observed, "
            "checked_at = excluded.checked_at",
            (name, owner, source, listed, status, reason, json.dumps(observed), time.time()))

    def dataset_status(self, name: str) -> tuple[str, str] | None:
        """(status, reason) of a dataset's last check, or None if never checked."""
        row = self._one("SELECT status, reason FROM datasets WHERE name = %s", (name,))
        return (str(row[0]), str(row[1])) if row else None

    def dataset_seen(self, name: str) -> set[str]:
        """The columns ever read from the source for this dataset."""
        row = self._one("SELECT observed FROM datasets WHERE name = %s", (name,))
        return set(row[0]) if row and row[0] else set()


class PostgresNonceStore(_Postgres):
    """Signed-request nonces in PostgreSQL: a nonce spent through one replica is refused by
    every other while it is remembered."""

    def __init__(self, db: Database | str) -> None:
        super().__init__(db)
        self._spent = 0

    def spend(self, nonce: str, now: float, ttl_s: float) -> bool:
        # one statement decides: a new nonce is inserted, a forgotten one (past its time)
        # taken again, a remembered one refused — atomically across replicas
        with self.db.connection() as con:
            row = con.execute(
                "INSERT INTO nonces (nonce, until) VALUES (%s, %s) ON CONFLICT (nonce) DO "
                "UPDATE SET until = excluded.until WHERE nonces.until < %s RETURNING 1",
                (nonce, now + ttl_s, now)).fetchone()
            self._spent += 1
            if self._spent % _PURGE_EVERY == 0:
                con.execute("DELETE FROM nonces WHERE until < %s", (now,))
        return row is not None


class PostgresSessionStore(_Postgres):
    """Browser sessions in PostgreSQL: a session opened on one replica is valid on all."""

    def put(self, sid_hash: bytes, member: str, token_hash: str, expires_at: float,
            now: float) -> None:
        with self.db.connection() as con:
            con.execute("DELETE FROM token_sessions WHERE expires_at <= %s", (now,))
            con.execute("INSERT INTO token_sessions (sid_hash, member, token_hash, expires_at) "
                        "VALUES (%s, %s, %s, %s) ON CONFLICT (sid_hash) DO UPDATE SET "
                        "member = excluded.member, token_hash = excluded.token_hash, "
                        "expires_at = excluded.expires_at",
                        (sid_hash, member, token_hash, expires_at))

    def get(self, sid_hash: bytes, now: float) -> tuple[str, str, float] | None:
        row = self._one("SELECT member, token_hash, expires_at FROM token_sessions WHERE "
                        "sid_hash = %s AND expires_at > %s", (sid_hash, now))
        return (str(row[0]), str(row[1]), float(row[2])) if row else None

    def delete(self, sid_hash: bytes) -> None:
        self._run("DELETE FROM token_sessions WHERE sid_hash = %s", (sid_hash,))


class PostgresRateCounters(_Postgres):
    """Sliding-window counters in PostgreSQL (one row per counted hit), counting the hits of
    every replica."""

    def hit(self, key: str, limit: int, window_s: float, now: float) -> float | None:
        # a counter is not worth a disk flush per hit: a server crash forgets at most its
        # last fraction of a second of hits (nonces, sessions and budgets stay durable)
        with self.db.transaction((LOCK_RATE, _key(key)), durable=False) as con:
            con.execute("DELETE FROM rate_hits WHERE key = %s AND at <= %s",
                        (key, now - window_s))
            row = con.execute("SELECT count(*), min(at) FROM rate_hits WHERE key = %s",
                              (key,)).fetchone()
            n, oldest = (int(row[0]), now if row[1] is None else float(row[1])) if row else (0, now)
            if n >= limit:
                return float(window_s - (now - oldest))
            con.execute("INSERT INTO rate_hits (key, at) VALUES (%s, %s)", (key, now))
            return None


class PostgresLookupCounts(_Postgres):
    """Distinct values per key in PostgreSQL (one row per key and value: its last sight),
    counting the lookups of every replica."""

    def spend(self, key: str, values: Sequence[str], limit: int, window_s: float,
              now: float) -> int | None:
        distinct = sorted(set(values))
        with self.db.transaction((LOCK_LOOKUPS, _key(key))) as con:
            con.execute("DELETE FROM lookups WHERE key = %s AND at <= %s",
                        (key, now - window_s))
            row = con.execute(
                "SELECT count(*), count(*) FILTER (WHERE value = ANY(%s)) FROM lookups "
                "WHERE key = %s", (distinct, key)).fetchone()
            n, known = (int(row[0]), int(row[1])) if row else (0, 0)
            if n + len(distinct) - known > limit:
                return n
            if distinct:
                con.execute("INSERT INTO lookups (key, value, at) SELECT %s, v, %s FROM "
                            "unnest(%s::text[]) AS v ON CONFLICT (key, value) DO UPDATE SET "
                            "at = excluded.at", (key, now, distinct))
            return None

    def count(self, key: str, window_s: float, now: float) -> int:
        row = self._one("SELECT count(*) FROM lookups WHERE key = %s AND at > %s",
                        (key, now - window_s))
        return int(row[0]) if row else 0
