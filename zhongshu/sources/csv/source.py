"""CSV folder source: read by DuckDB's CSV reader (header row, types detected)."""

from __future__ import annotations

from zhongshu.sources._files import FolderSource
from zhongshu.sources.base import sql_literal


class Source(FolderSource):
    kind = "csv"
    extension = "csv"

    def reader(self, glob: str) -> str:
        return f"read_csv({sql_literal(glob)}, header = true)"
