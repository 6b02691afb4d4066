"""The PostgreSQL store's schema: versioned SQL files, applied only when asked.

Each migration is a file ``migrations/NNNN_what.sql`` of this package; the database's
``schema_version`` table records those applied. :func:`upgrade` (``zhongshu db upgrade``)
applies the missing ones in order, each in one transaction under an advisory lock (two
upgrades started at once apply each migration once); :func:`require_current` is what a hub
calls before serving: a store older than the code is refused, never migrated on the way.

A store newer than the code is accepted: during a rolling upgrade the schema is upgraded
first and the old replicas go on serving until replaced, so a migration only adds (tables,
columns with defaults, indexes) and never breaks the code of the version before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from zhongshu.errors import StoreOutdated
from zhongshu.stores.postgres import Database

__all__ = ["Migration", "Status", "latest", "migrations", "require_current", "status",
           "upgrade"]

LOCK_SCHEMA = (0x5A53_0000, 0)  # the advisory lock an upgrade holds
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    version integer PRIMARY KEY, name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now())"""


@dataclass(frozen=True)
class Migration:
    """One versioned SQL file."""

    version: int
    name: str
    sql: str


@dataclass(frozen=True)
class Status:
    """Where a database's schema stands against this code."""

    current: int  # the highest migration applied (0: none)
    latest: int  # the highest this code ships
    pending: list[Migration]  # shipped, not applied, in order

    @property
    def up_to_date(self) -> bool:
        """No migration is missing."""
        return not self.pending


def migrations() -> list[Migration]:
    """Every migration this code ships, in order of version.

    >>> [m.version for m in migrations()][:1]
    [1]
    """
    out = []
    for f in resources.files("zhongshu.stores.migrations").iterdir():
        m = _NAME.match(f.name)
        if m:
            out.append(Migration(int(m.group(1)), m.group(2), f.read_text(encoding="utf-8")))
    out.sort(key=lambda m: m.version)
    if [m.version for m in out] != list(range(1, len(out) + 1)):
        raise RuntimeError("the store's migrations are not numbered 1, 2, 3, … without gaps")
    return out


def latest() -> int:
    """The schema version this code needs."""
    return migrations()[-1].version


def _applied(db: Database) -> set[int]:
    with db.connection() as con:
        row = con.execute("SELECT to_regclass('schema_version')").fetchone()
        if row is None or row[0] is None:
            return set()
        return {int(v) for (v,) in con.execute("SELECT version FROM schema_version")}


def status(db: Database) -> Status:
    """The schema's state: versions applied and those still to apply."""
    done = _applied(db)
    shipped = migrations()
    return Status(max(done, default=0), shipped[-1].version,
                  [m for m in shipped if m.version not in done])


def upgrade(db: Database) -> list[Migration]:
    """Apply the missing migrations in order, one transaction each; those applied now.

    Raises:
        StoreUnavailable: the database failed (the migration that failed is rolled back,
            those before it stay applied).
    """
    applied: list[Migration] = []
    for m in migrations():
        with db.transaction(LOCK_SCHEMA) as con:
            con.execute(_VERSION_TABLE)
            row = con.execute("SELECT 1 FROM schema_version WHERE version = %s",
                              (m.version,)).fetchone()
            if row is not None:
                continue
            con.execute(m.sql.encode())  # a script: several statements, no parameters
            con.execute("INSERT INTO schema_version (version, name) VALUES (%s, %s)",
                        (m.version, m.name))
            applied.append(m)
    return applied


def require_current(db: Database) -> Status:
    """The schema's status, when this code can run on it.

    Raises:
        StoreOutdated: a migration this code needs is not applied.
    """
    st = status(db)
    if not st.up_to_date:
        raise StoreOutdated(
            f"the hub's store {db.label} has schema version {st.current}, this hub needs "
            f"{st.latest}: run `zhongshu db upgrade` (with the same store settings), then "
            "start the hub again")
    return st
