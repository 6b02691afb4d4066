"""A PostgreSQL source's configuration: what it requires, and the libpq connection it gives."""

from __future__ import annotations

from typing import Any

from zhongshu.config import SourceConfig

DEFAULT_PORT = 5432
DEFAULT_USER = "postgres"


def check(config: SourceConfig) -> None:
    """Raises:
        ValueError: the source names no database.
    """
    if not config.database:
        raise ValueError("a postgres source needs `database`")


def options(config: SourceConfig) -> str:
    """Session settings of every connection: read-only, with the source's time limits."""
    ms = int(config.statement_timeout_s * 1000)
    return (f"-c statement_timeout={ms} -c default_transaction_read_only=on "
            f"-c idle_in_transaction_session_timeout={ms}")


def connection_params(config: SourceConfig) -> dict[str, Any]:
    """psycopg connection keywords (without the password)."""
    return {"host": config.host, "port": config.port or DEFAULT_PORT, "dbname": config.database,
            "user": config.user or DEFAULT_USER, "connect_timeout": 5,
            "application_name": "zhongshu-hub", "options": options(config)}
