"""MySQL / MariaDB databases, attached read-only."""

from zhongshu.sources.mysql.source import Source

__all__ = ["Source"]
