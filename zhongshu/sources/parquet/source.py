"""Parquet folder source: read by DuckDB's own Parquet reader (filter and projection pushdown)."""

from __future__ import annotations

from zhongshu.sources._files import FolderSource
from zhongshu.sources.base import sql_literal


class Source(FolderSource):
    kind = "parquet"
    extension = "parquet"

    def reader(self, glob: str) -> str:
        return f"read_parquet({sql_literal(glob)})"
