"""The embedded stores: SQLite files (WAL) in the city's ``state/`` folder.

Several processes may share one file: a token issued by ``zhongshu members token`` is seen by a
hub already serving the city on its next lookup. Each store keeps one connection per thread.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zhongshu.stores.base import ChangeHook

_METADATA = """
CREATE TABLE IF NOT EXISTS members (
    name TEXT PRIMARY KEY, kind TEXT NOT NULL, title TEXT NOT NULL DEFAULT '',
    roles TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY, member TEXT NOT NULL, label TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL, expires_at REAL, revoked_at REAL
);
CREATE INDEX IF NOT EXISTS ix_tokens_member ON tokens (member);
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY, member TEXT NOT NULL, public_key BLOB NOT NULL,
    created_at REAL NOT NULL, revoked_at REAL
);
CREATE TABLE IF NOT EXISTS grants (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, spec TEXT NOT NULL, created_by TEXT NOT NULL,
    created_at REAL NOT NULL, revoked_at REAL, revoked_by TEXT
);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, subject TEXT NOT NULL, details TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS datasets (
    name TEXT PRIMARY KEY, owner TEXT NOT NULL, source TEXT NOT NULL, listed INTEGER NOT NULL,
    status TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', observed TEXT NOT NULL DEFAULT '{}',
    checked_at REAL NOT NULL
);
"""


def _insert_once(con: sqlite3.Connection, what: str, sql: str, args: tuple[Any, ...]) -> None:
    """Run an INSERT of a row that must be new; a duplicate key is a ``ValueError``."""
    try:
        con.execute(sql, args)
    except sqlite3.IntegrityError:
        raise ValueError(f"this {what} already exists") from None


class _Sqlite:
    """One SQLite file with its schema, a connection per thread, in autocommit mode."""

    def __init__(self, path: Path, schema: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)  # the hub's state: no other user, no DuckDB worker, reads it
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._conn().executescript(schema)

    def _conn(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=10, isolation_level=None,
                                  check_same_thread=False)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
            with self._all_lock:
                self._all.append(con)
        return con

    def close(self) -> None:
        """Close every thread's connection."""
        with self._all_lock:
            for con in self._all:
                con.close()
            self._all.clear()
        self._local = threading.local()




class SqliteMetadataStore(_Sqlite):
    """The metadata store in a SQLite file (thread-safe; several processes may share it)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _METADATA)
        # called with (actor, action, subject, details) after each governance change
        self.on_change: ChangeHook | None = None

    # --- members and tokens ---------------------------------------------------------------

    def upsert_member(self, name: str, kind: str, title: str, roles: list[str]) -> None:
        """Record a member as declared in the city configuration."""
        self._conn().execute(
            "INSERT INTO members (name, kind, title, roles) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, title = excluded.title, "
            "roles = excluded.roles", (name, kind, title, json.dumps(roles)))

    def add_token(self, token_hash: str, member: str, label: str = "",
                  expires_at: float | None = None) -> None:
        """Store the hash of a newly issued token."""
        _insert_once(
            self._conn(), "token", "INSERT INTO tokens (token_hash, member, label, created_at, "
            "expires_at) VALUES (?, ?, ?, ?, ?)",
            (token_hash, member, label, time.time(), expires_at))

    def token_member(self, token_hash: str, now: float | None = None) -> str | None:
        """The member holding a valid (unrevoked, unexpired) token with this hash, or None."""
        now = time.time() if now is None else now
        row = self._conn().execute(
            "SELECT member FROM tokens WHERE token_hash = ? AND revoked_at IS NULL "
            "AND (expires_at IS NULL OR expires_at > ?)", (token_hash, now)).fetchone()
        return row[0] if row else None

    def revoke_tokens(self, member: str, prefix: str | None = None) -> int:
        """Revoke a member's tokens (all, or the one whose hash starts with ``prefix``);
        return how many were revoked."""
        sql = "UPDATE tokens SET revoked_at = ? WHERE member = ? AND revoked_at IS NULL"
        args: list[Any] = [time.time(), member]
        if prefix:
            sql += " AND token_hash LIKE ?"
            args.append(prefix.replace("%", "") + "%")
        return self._conn().execute(sql, args).rowcount

    def add_key(self, key_id: str, member: str, public_key: bytes) -> None:
        """Register a member's Ed25519 public key (32 raw bytes) under ``key_id``."""
        _insert_once(self._conn(), "key", "INSERT INTO keys (key_id, member, public_key, "
                     "created_at) VALUES (?, ?, ?, ?)", (key_id, member, public_key, time.time()))

    def key(self, key_id: str) -> tuple[str, bytes] | None:
        """(member, public key) of an unrevoked key, or None."""
        row = self._conn().execute("SELECT member, public_key FROM keys WHERE key_id = ? AND "
                                   "revoked_at IS NULL", (key_id,)).fetchone()
        return (row[0], bytes(row[1])) if row else None

    # --- governance changes -----------------------------------------------------------------

    def record_change(self, actor: str, action: str, subject: str,
                      details: dict[str, Any] | None = None) -> int:
        """Record who changed what (token, key, grant); returns the change's sequence number.

        Details never hold a secret: tokens appear by their id (hash prefix) only.
        """
        cur = self._conn().execute(
            "INSERT INTO changes (at, actor, action, subject, details) VALUES (?, ?, ?, ?, ?)",
            (time.time(), actor, action, subject, json.dumps(details or {}, default=str)))
        if self.on_change is not None:  # the hub's ledger, when one is attached
            self.on_change(actor, action, subject, json.loads(json.dumps(details or {},
                                                                         default=str)))
        return int(cur.lastrowid or 0)

    def changes(self, since: int = 0) -> list[dict[str, Any]]:
        """Governance changes after sequence number ``since``, oldest first."""
        rows = self._conn().execute("SELECT seq, at, actor, action, subject, details FROM "
                                    "changes WHERE seq > ? ORDER BY seq", (since,)).fetchall()
        return [{"seq": r[0], "at": r[1], "actor": r[2], "action": r[3], "subject": r[4],
                 "details": json.loads(r[5])} for r in rows]

    def version(self) -> int:
        """The latest change's sequence number (0 when none): grants reload when it moves."""
        row = self._conn().execute("SELECT max(seq) FROM changes").fetchone()
        return int(row[0] or 0)

    def add_grant(self, grant_id: str, owner: str, spec: dict[str, Any], actor: str) -> None:
        """Store a grant made through the CLI or the API."""
        _insert_once(
            self._conn(), "grant", "INSERT INTO grants (id, owner, spec, created_by, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (grant_id, owner, json.dumps(spec, default=str), actor, time.time()))

    def revoke_grant(self, grant_id: str, actor: str) -> bool:
        """Revoke a stored grant; False when there is no such active grant."""
        cur = self._conn().execute(
            "UPDATE grants SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at IS NULL",
            (time.time(), actor, grant_id))
        return cur.rowcount > 0

    def stored_grants(self) -> list[tuple[str, str, dict[str, Any], str]]:
        """Active stored grants: (id, owner, spec, created_by)."""
        rows = self._conn().execute("SELECT id, owner, spec, created_by FROM grants WHERE "
                                    "revoked_at IS NULL ORDER BY created_at").fetchall()
        return [(r[0], r[1], json.loads(r[2]), r[3]) for r in rows]

    def members(self) -> list[dict[str, Any]]:
        """Members with their count of valid tokens."""
        rows = self._conn().execute(
            "SELECT m.name, m.kind, m.title, m.roles, (SELECT count(*) FROM tokens t WHERE "
            "t.member = m.name AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR "
            "t.expires_at > ?)) FROM members m ORDER BY m.name", (time.time(),)).fetchall()
        return [dict(zip(("name", "kind", "title", "roles", "tokens"), r, strict=True))
                for r in rows]

    # --- dataset status -------------------------------------------------------------------

    def record_dataset(self, name: str, owner: str, source: str, listed: bool, status: str,
                       reason: str, observed: dict[str, str]) -> None:
        """Record a dataset's last check: ``ok``, ``drift``, ``invalid`` or ``source_down``;
        ``observed`` is kept merged over what was seen before."""
        con = self._conn()
        row = con.execute("SELECT observed FROM datasets WHERE name = ?", (name,)).fetchone()
        observed = {**(json.loads(row[0]) if row and row[0] else {}), **observed}
        con.execute(
            "INSERT INTO datasets (name, owner, source, listed, status, reason, observed, "
            "checked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
            "owner = excluded.owner, source = excluded.source, listed = excluded.listed, "
            "status = excluded.status, reason = excluded.reason, observed = excluded.observed, "
            "checked_at = excluded.checked_at",
            (name, owner, source, int(listed), status, reason, json.dumps(observed), time.time()))

    def dataset_status(self, name: str) -> tuple[str, str] | None:
        """(status, reason) of a dataset's last check, or None if never checked."""
        row = self._conn().execute("SELECT status, reason FROM datasets WHERE name = ?",
                                   (name,)).fetchone()
        return (row[0], row[1]) if row else None

    def dataset_seen(self, name: str) -> set[str]:
        """The columns ever read from the source for this dataset."""
        row = self._conn().execute("SELECT observed FROM datasets WHERE name = ?",
                                   (name,)).fetchone()
        return set(json.loads(row[0])) if row and row[0] else set()


class SqliteNonceStore(_Sqlite):
    """Signed-request nonces in a SQLite file, shared by the processes that open it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, "
                               "until REAL NOT NULL);")

    def spend(self, nonce: str, now: float, ttl_s: float) -> bool:
        con = self._conn()
        con.execute("DELETE FROM nonces WHERE until < ?", (now,))
        cur = con.execute("INSERT OR IGNORE INTO nonces (nonce, until) VALUES (?, ?)",
                          (nonce, now + ttl_s))
        return cur.rowcount == 1


class SqliteSessionStore(_Sqlite):
    """Browser sessions in a SQLite file: a session opened by one process is seen by all.

    The table is ``token_sessions``: sessions of the older ``sessions`` table did not record
    their token, so they cannot end with it, and are not read (their viewers sign in again).
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path, "CREATE TABLE IF NOT EXISTS token_sessions (sid_hash BLOB "
                               "PRIMARY KEY, member TEXT NOT NULL, token_hash TEXT NOT NULL, "
                               "expires_at REAL NOT NULL);")

    def put(self, sid_hash: bytes, member: str, token_hash: str, expires_at: float,
            now: float) -> None:
        con = self._conn()
        con.execute("DELETE FROM token_sessions WHERE expires_at <= ?", (now,))
        con.execute("INSERT OR REPLACE INTO token_sessions (sid_hash, member, token_hash, "
                    "expires_at) VALUES (?, ?, ?, ?)", (sid_hash, member, token_hash,
                                                         expires_at))

    def get(self, sid_hash: bytes, now: float) -> tuple[str, str, float] | None:
        row = self._conn().execute("SELECT member, token_hash, expires_at FROM token_sessions "
                                   "WHERE sid_hash = ? AND expires_at > ?",
                                   (sid_hash, now)).fetchone()
        return (str(row[0]), str(row[1]), float(row[2])) if row else None

    def delete(self, sid_hash: bytes) -> None:
        self._conn().execute("DELETE FROM token_sessions WHERE sid_hash = ?", (sid_hash,))


class SqliteRateCounters(_Sqlite):
    """Sliding-window counters in a SQLite file (one row per counted hit)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "CREATE TABLE IF NOT EXISTS rate_hits (key TEXT NOT NULL, "
                               "at REAL NOT NULL); CREATE INDEX IF NOT EXISTS ix_rate_hits "
                               "ON rate_hits (key, at);")

    def hit(self, key: str, limit: int, window_s: float, now: float) -> float | None:
        con = self._conn()
        con.execute("BEGIN IMMEDIATE")  # count and insert as one step across processes
        try:
            con.execute("DELETE FROM rate_hits WHERE key = ? AND at <= ?", (key, now - window_s))
            n, oldest = con.execute("SELECT count(*), min(at) FROM rate_hits WHERE key = ?",
                                    (key,)).fetchone()
            if n >= limit:
                con.execute("COMMIT")
                return float(window_s - (now - oldest))
            con.execute("INSERT INTO rate_hits (key, at) VALUES (?, ?)", (key, now))
            con.execute("COMMIT")
            return None
        except BaseException:
            con.execute("ROLLBACK")
            raise


class SqliteLookupCounts(_Sqlite):
    """Distinct values per key in a SQLite file (one row per key and value: its last sight)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "CREATE TABLE IF NOT EXISTS lookups (key TEXT NOT NULL, "
                               "value TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (key, value));"
                               " CREATE INDEX IF NOT EXISTS ix_lookups ON lookups (key, at);")

    def spend(self, key: str, values: Sequence[str], limit: int, window_s: float,
              now: float) -> int | None:
        con = self._conn()
        con.execute("BEGIN IMMEDIATE")  # count and insert as one step across processes
        try:
            con.execute("DELETE FROM lookups WHERE key = ? AND at <= ?", (key, now - window_s))
            (n,) = con.execute("SELECT count(*) FROM lookups WHERE key = ?", (key,)).fetchone()
            distinct = sorted(set(values))
            known = 0
            for i in range(0, len(distinct), 500):
                chunk = distinct[i:i + 500]
                (m,) = con.execute(
                    f"SELECT count(*) FROM lookups WHERE key = ? AND value IN "
                    f"({', '.join('?' * len(chunk))})", (key, *chunk)).fetchone()
                known += m
            if n + len(distinct) - known > limit:
                con.execute("COMMIT")
                return int(n)
            con.executemany("INSERT INTO lookups (key, value, at) VALUES (?, ?, ?) ON CONFLICT "
                            "(key, value) DO UPDATE SET at = excluded.at",
                            [(key, v, now) for v in distinct])
            con.execute("COMMIT")
            return None
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def count(self, key: str, window_s: float, now: float) -> int:
        (n,) = self._conn().execute("SELECT count(*) FROM lookups WHERE key = ? AND at > ?",
                                    (key, now - window_s)).fetchone()
        return int(n)
