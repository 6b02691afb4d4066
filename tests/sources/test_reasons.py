"""A source's failure reason is a phrase from a closed set, whatever the driver said: the
driver's text — hosts, ports, paths, users — never reaches a health report or an error."""

from __future__ import annotations

import socket

import duckdb
from hypothesis import given
from hypothesis import strategies as st

from zhongshu.sources.errors import REASONS, failure_reason

REAL = [  # what drivers say, each with what must not leak
    (OSError('connection to server at "db.traffic.internal" (10.1.2.3), port 5432 failed: '
             "Connection refused"), "connection refused"),
    (OSError("(2003, \"Can't connect to MySQL server on 'credit-db.local' ([Errno 111] "
             "Connection refused)\")"), "connection refused"),
    (OSError('FATAL:  password authentication failed for user "traffic_ro"'),
     "authentication failed"),
    (socket.gaierror("could not translate host name \"pg.x\" to address"),
     "host name not resolved"),
    (TimeoutError("timed out after 5 s talking to 10.0.0.9:5432"), "timed out"),
    (duckdb.IOException("IO Error: No files found that match the pattern "
                        "\"/srv/city/data/parks/*.parquet\""), "not found"),
    (PermissionError("[Errno 13] Permission denied: '/root/city/data/civil.csv'"),
     "permission denied"),
]


def test_real_driver_errors_get_their_reason_and_nothing_else() -> None:
    for err, reason in REAL:
        assert failure_reason(err) == reason, err


@given(st.text(max_size=200))
def test_any_text_gives_a_reason_of_the_closed_set(text: str) -> None:
    for err in (OSError(text), RuntimeError(text), duckdb.IOException(text)):
        reason = failure_reason(err)
        assert reason in REASONS
        assert not any(c.isdigit() or c in "/\\:@." for c in reason)
