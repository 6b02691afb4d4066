"""DuckDB scanner extensions, loaded from their installed PyPI packages (never downloaded)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import duckdb

from zhongshu.errors import ZhongshuError

_PACKAGES = {
    "postgres_scanner": "duckdb_extension_postgres_scanner",
    "mysql_scanner": "duckdb_extension_mysql_scanner",
    "sqlite_scanner": "duckdb_extension_sqlite_scanner",
}


def extension_path(name: str) -> Path:
    """Path of the installed ``name`` extension built for this DuckDB version.

    Raises:
        ZhongshuError: the package is missing or holds no build for this DuckDB.
    """
    spec = importlib.util.find_spec(_PACKAGES[name])
    if spec is None or spec.origin is None:
        raise ZhongshuError(f"DuckDB extension package `{_PACKAGES[name]}` is not installed; "
                            "run `make demo` or `pip install -e .`")
    path = (Path(spec.origin).parent / "extensions" / f"v{duckdb.__version__}"
            / f"{name}.duckdb_extension")
    if not path.is_file():
        raise ZhongshuError(f"{path.name} for DuckDB {duckdb.__version__} not found in "
                            f"{path.parent.parent}; install the matching extension package")
    return path


def load(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Load extension ``name`` into ``con`` from its package path."""
    con.execute(f"LOAD '{extension_path(name)}'")
