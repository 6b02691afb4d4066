"""MySQL / MariaDB errors (PyMySQL), by error code.

Transient: the client's connection errors — 2002/2003 (cannot connect), 2006 (server gone
away), 2013 and 2055 (connection lost during the query) — and the server's 1040 (too many
connections), 1049 (unknown database: dropped), 1053 (shutting down), 1927 (connection killed)
and 4031 (disconnected by the server for inactivity), plus PyMySQL's ``InterfaceError`` on a
closed connection. Timeout: 1969 (MariaDB ``max_statement_time``) and 3024 (MySQL
``max_execution_time``). Anything else is the query's fault.
"""

from __future__ import annotations

import pymysql

from zhongshu.sources.errors import Failure

TRANSIENT_CODES = frozenset({1040, 1049, 1053, 1927, 2002, 2003, 2006, 2013, 2055, 4031})
TIMEOUT_CODES = frozenset({1969, 3024})


def classify(exc: BaseException) -> Failure | None:
    """What a PyMySQL error means; None when ``exc`` is not one."""
    if isinstance(exc, pymysql.err.InterfaceError):
        return "transient"
    if not isinstance(exc, pymysql.err.MySQLError):
        return None
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    if code in TIMEOUT_CODES:
        return "timeout"
    if code in TRANSIENT_CODES:
        return "transient"
    return "terminal"
