"""The DuckDB engine: sources attached read-only, then external access off and config locked.

An engine is never re-configured: when a source comes back after an outage the hub builds a
fresh engine (attaching every source that is up) and swaps it in; queries already running
finish on the old one.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import duckdb
from duckdb.func import PythonUDFType
from duckdb.sqltypes import VARCHAR

from zhongshu.config import HubSettings
from zhongshu.policy.masking import PSEUDONYM_FN, PseudonymKeys
from zhongshu.sources import Source
from zhongshu.sources.errors import failure_reason


class Engine:
    """One locked-down DuckDB database with a set of attached sources."""

    def __init__(self, sources: Iterable[Source], settings: HubSettings, tmp_dir: Path,
                 generation: int, keys: PseudonymKeys | None = None) -> None:
        self.generation = generation
        self.attached: dict[str, str] = {}
        self.failed: dict[str, str] = {}
        tmp_dir.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(":memory:", config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "threads": settings.duckdb_threads,
            "memory_limit": settings.duckdb_memory_limit,
            "temp_directory": str(tmp_dir),
        })
        allowed: list[str] = []
        for src in sources:
            try:
                src.attach(self.con)
                self.attached[src.name] = src.alias
                allowed.extend(src.allowed_paths())
            except Exception as e:
                src.unavailable_message(e)  # logs the driver's text, password removed
                self.failed[src.name] = failure_reason(e)
        if keys is not None:
            self.con.create_function(PSEUDONYM_FN, keys.udf, [VARCHAR, VARCHAR], VARCHAR,
                                     type=PythonUDFType.ARROW, side_effects=False)
        if allowed:
            self.con.execute("SET allowed_directories = ?", [allowed])
        self.con.execute("SET enable_progress_bar = false")  # not on the hub's console
        self.con.execute("SET enable_external_access = false")
        self.con.execute("SET allow_community_extensions = false")
        self.con.execute("SET lock_configuration = true")

    def close(self) -> None:
        """Close the engine (queries still running on it fail)."""
        self.con.close()
