"""Parquet folder source: read by DuckDB's own Parquet reader (filter and projection pushdown)."""

from __future__ import annotations

from zhongshu.sources._files import FolderSource, _lit


class Source(FolderSource):
    kind = "parquet"
    extension = "parquet"

    def reader(self, glob: str) -> str:
        return f"read_parquet({_lit(glob)})"
