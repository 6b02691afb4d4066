"""Folders of CSV files."""

from zhongshu.sources.csv.source import Source

__all__ = ["Source"]
