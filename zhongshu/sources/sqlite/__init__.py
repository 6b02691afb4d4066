"""SQLite files, attached read-only."""

from zhongshu.sources.sqlite.source import Source

__all__ = ["Source"]
