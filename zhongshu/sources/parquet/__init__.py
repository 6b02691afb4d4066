"""Folders of Parquet files."""

from zhongshu.sources.parquet.source import Source

__all__ = ["Source"]
