"""A MySQL / MariaDB source's configuration: what it requires, and the PyMySQL connection it
gives."""

from __future__ import annotations

from typing import Any

from zhongshu.config import SourceConfig

DEFAULT_PORT = 3306
DEFAULT_USER = "root"


def check(config: SourceConfig) -> None:
    """Raises:
        ValueError: the source names no database.
    """
    if not config.database:
        raise ValueError("a mysql source needs `database`")


def connection_params(config: SourceConfig) -> dict[str, Any]:
    """PyMySQL connection keywords (without the password)."""
    return {"host": config.host, "port": config.port or DEFAULT_PORT,
            "database": config.database, "user": config.user or DEFAULT_USER,
            "connect_timeout": 5, "read_timeout": int(config.statement_timeout_s) + 5,
            "charset": "utf8mb4", "autocommit": True}
