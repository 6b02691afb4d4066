"""The PostgreSQL wire endpoint: BI tools (psql, DBeaver, Superset, pandas, JDBC) connect
unchanged, and every query is the same governed, recorded exchange as ``POST /v1/query``.

``server`` holds the sessions (login, statements, the extended protocol), ``catalog`` the
emulated per-caller ``pg_catalog`` and ``information_schema``, ``types`` the PostgreSQL types
of the hub's answers, ``statements`` client commands and parameter binding, ``errors`` the
SQLSTATE of each protocol error code, ``tls`` the endpoint's certificate.
"""

from zhongshu.protocol.pgwire.server import Endpoint

__all__ = ["Endpoint"]
