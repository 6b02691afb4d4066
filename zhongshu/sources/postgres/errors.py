"""PostgreSQL errors (psycopg 3), by class and SQLSTATE.

Transient: every error psycopg raises before the server has answered (connection refused,
server unknown, database dropped: ``OperationalError`` without a SQLSTATE), a closed
connection (``InterfaceError``), SQLSTATE class 08 (connection exception), 53 (insufficient
resources: too many connections) and 57P01–57P05 (the server is shutting down or was restarted,
the backend terminated by an administrator, the database dropped). Timeout: 57014
(``QueryCanceled``, the session's ``statement_timeout``). Anything else the server answered is
the query's fault.
"""

from __future__ import annotations

import psycopg

from zhongshu.sources.errors import Failure

_SHUTDOWN = frozenset({"57P01", "57P02", "57P03", "57P04", "57P05"})


def classify(exc: BaseException) -> Failure | None:
    """What a psycopg error means; None when ``exc`` is not one."""
    if isinstance(exc, psycopg.InterfaceError):
        return "transient"
    if not isinstance(exc, psycopg.Error):
        return None
    state = exc.sqlstate
    if state is None:
        return "transient" if isinstance(exc, psycopg.OperationalError) else "terminal"
    if state == "57014":
        return "timeout"
    if state.startswith(("08", "53")) or state in _SHUTDOWN:
        return "transient"
    return "terminal"
