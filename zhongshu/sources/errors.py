"""Translating source errors in one place per kind (as dlt's
``SqlClientBase._make_database_exception``): every failure is one of

* ``transient`` — the source could not be reached, or dropped the connection (refused, reset,
  lost, shutting down, its file missing): retry once on a fresh connection, or mark it down;
* ``timeout`` — a statement time limit stopped the query;
* ``terminal`` — the query's own fault (a type error, a bad cast…): retrying cannot help.

Each kind classifies its own driver's errors by their classes and codes
(``zhongshu/sources/<kind>/errors.py``); what every kind shares — DuckDB reading a source, and
the operating system — is here. :meth:`zhongshu.sources.Source.translate` turns a failure into
the protocol error (``SourceUnavailable``, ``QueryTimeout`` or ``QueryInvalid``).
"""

from __future__ import annotations

import re
from typing import Literal

import duckdb

Failure = Literal["transient", "timeout", "terminal"]

# DuckDB's exception classes for a source that cannot be read (its scanners raise IOException
# for a server that refused or dropped them, its readers for files that are gone)
_ENGINE_TRANSIENT = frozenset({"IOException", "ConnectionException", "HTTPException"})
_ENGINE_TIMEOUT = frozenset({"InterruptException"})


def engine_failure(exc: BaseException) -> Failure | None:
    """What a DuckDB error means: one raised in process (``duckdb.Error``), or one a DuckDB
    worker process reported with its class name as ``kind`` (``zhongshu.query.worker
    .WorkerError``); None for anything else.

    >>> engine_failure(duckdb.IOException("IO Error: No files found"))
    'transient'
    >>> engine_failure(duckdb.BinderException("Binder Error: column not found"))
    'terminal'
    """
    if isinstance(exc, duckdb.Error):
        name = type(exc).__name__
    else:
        kind = getattr(exc, "kind", None)
        if not isinstance(kind, str) or not kind.endswith(("Exception", "Error")):
            return None
        name = kind
    if name in _ENGINE_TRANSIENT:
        return "transient"
    if name in _ENGINE_TIMEOUT:
        return "timeout"
    return "terminal"


def generic_failure(exc: BaseException) -> Failure | None:
    """Operating-system errors any driver may let through: a refused or reset connection, a
    file that is gone, a socket timeout.

    >>> generic_failure(ConnectionResetError()), generic_failure(ValueError())
    ('transient', None)
    """
    if isinstance(exc, (ConnectionError, FileNotFoundError, PermissionError, TimeoutError)):
        return "transient"
    return None


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")  # engines quote data values either way


def safe_message(msg: str) -> str:
    """An engine's error message without quoted values or internal relation names.

    >>> safe_message('Conversion Error: Could not convert string "abc" to INT32 (src_db)')
    'Could not convert string … to INT32 (…)'
    """
    msg = re.sub(r"^[A-Za-z ]*Error: ", "", msg)
    msg = _QUOTED.sub("…", msg)
    msg = re.sub(r"\b(src_\w+|__raw__\w+)", "…", msg)
    return msg[:300]


# what a reason may say, first match wins: (words in the driver's message, the reason)
_REASONS = (
    (("refused",), "connection refused"),
    (("timed out", "timeout"), "timed out"),
    (("authentication", "password", "access denied", "not authorized"),
     "authentication failed"),
    (("could not translate host", "name or service not known", "unknown host",
      "name resolution", "nodename nor servname"), "host name not resolved"),
    (("unreachable", "no route"), "network unreachable"),
    (("reset", "closed", "broken pipe", "lost connection", "server has gone away",
      "terminating connection", "shutting down"), "connection lost"),
    (("permission denied",), "permission denied"),
    (("no such file", "no files found", "does not exist", "not found", "unknown database"),
     "not found"),
)


def failure_reason(exc: BaseException) -> str:
    """Why a source failed, as a phrase from a closed set — never the driver's own text,
    which may carry a host, a port, a path or a user name: ``connection refused``, ``timed
    out``, ``authentication failed``, ``host name not resolved``, ``network unreachable``,
    ``connection lost``, ``permission denied``, ``not found`` or ``cannot be read``.

    >>> failure_reason(OSError('connection to server at "10.0.0.7", port 5432 failed: '
    ...                        'Connection refused'))
    'connection refused'
    >>> failure_reason(duckdb.IOException("Cannot open file /srv/city/data/x.db"))
    'cannot be read'
    """
    text = f"{type(exc).__name__} {exc}".lower()
    if isinstance(exc, TimeoutError):
        return "timed out"
    for words, reason in _REASONS:
        if any(w in text for w in words):
            return reason
    return "cannot be read"


REASONS = frozenset(r for _, r in _REASONS) | {"cannot be read"}
