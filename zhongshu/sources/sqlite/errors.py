"""SQLite errors (the standard library's ``sqlite3``), by primary result code.

Transient: the file cannot be opened or read (``SQLITE_CANTOPEN``, ``SQLITE_IOERR``,
``SQLITE_NOTADB``: replaced by something that is not a database, ``SQLITE_CORRUPT``,
``SQLITE_PERM``), or is busy or locked by a writer past the busy timeout
(``SQLITE_BUSY``, ``SQLITE_LOCKED``). Timeout: ``SQLITE_INTERRUPT`` (the hub's progress
handler stops a query past its time limit). Anything else is the query's fault.
"""

from __future__ import annotations

import sqlite3

from zhongshu.sources.errors import Failure

_TRANSIENT = frozenset({sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_NOTADB,
                        sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_PERM, sqlite3.SQLITE_BUSY,
                        sqlite3.SQLITE_LOCKED})


def classify(exc: BaseException) -> Failure | None:
    """What a sqlite3 error means; None when ``exc`` is not one."""
    if not isinstance(exc, sqlite3.Error):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:  # raised by the module itself (a misuse), not by SQLite
        return "terminal"
    primary = code & 0xFF  # extended result codes keep the primary one in the low byte
    if primary == sqlite3.SQLITE_INTERRUPT:
        return "timeout"
    return "transient" if primary in _TRANSIENT else "terminal"
