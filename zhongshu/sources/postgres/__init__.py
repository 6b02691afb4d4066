"""PostgreSQL databases, attached read-only."""

from zhongshu.sources.postgres.source import Source

__all__ = ["Source"]
