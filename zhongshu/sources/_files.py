"""Folders of files (Parquet, CSV): each file ``TABLE.EXT`` or folder ``TABLE/`` is a table.

DuckDB is these sources' native engine: its readers push filters and projections into the
scan. The engine sees the files through views created before its configuration is locked, and
may read only the source folders (``allowed_directories``).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import duckdb
from sqlglot import exp

from zhongshu.sources.base import Files


class FolderSource(Files):
    extension: ClassVar[str]

    def tables(self) -> dict[str, str]:
        """Table name → glob of its files."""
        root = self.path()
        found: dict[str, str] = {}
        for p in sorted(root.iterdir()):
            if p.is_file() and p.suffix == f".{self.extension}":
                found[p.stem] = str(p)
            elif p.is_dir() and any(p.glob(f"*.{self.extension}")):
                found[p.name] = str(p / f"*.{self.extension}")
        return found

    @abstractmethod
    def reader(self, glob: str) -> str:
        """The DuckDB table function call reading ``glob``."""

    def attach(self, con: duckdb.DuckDBPyConnection) -> None:
        """Create a schema with one view per table file; nothing is copied."""
        self.probe()
        con.execute(f"CREATE SCHEMA IF NOT EXISTS memory.{self.alias}")
        for table, glob in self.tables().items():
            con.execute(f'CREATE OR REPLACE VIEW memory.{self.alias}."{table}" AS '
                        f"SELECT * FROM {self.reader(glob)}")

    def relation(self, table: str) -> exp.Table:
        return exp.table_(table, db=self.alias, catalog="memory", quoted=True)

    def probe(self) -> None:
        root = self.path()
        if not root.is_dir():
            raise FileNotFoundError(f"folder not found: {root.name}")
        if not self.tables():
            raise FileNotFoundError(f"no .{self.extension} files in {root.name}")

    def datasets(self) -> list[str]:
        """The table names the folder's files give (file stems and sub-folders)."""
        self.probe()
        return list(self.tables())

    def allowed_paths(self) -> list[str]:
        return [str(self.path().resolve()) + "/"]
