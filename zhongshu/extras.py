"""The optional extras of the ``zhongshu`` distribution (pyproject.toml's
``[project.optional-dependencies]``) and the modules each brings, so that a command that
needs a missing one says what to install instead of printing a traceback.

>>> hint(ModuleNotFoundError("No module named 'duckdb'", name="duckdb"))
"this command needs the hub: pip install 'zhongshu[hub]'"
>>> hint(ModuleNotFoundError("No module named 'paho.mqtt'", name="paho.mqtt"))
"this command needs the stream clients (MQTT, NATS): pip install 'zhongshu[streams]'"
>>> hint(ModuleNotFoundError("No module named 'nosuch'", name="nosuch")) is None
True
"""

from __future__ import annotations

WHAT = {
    "hub": "the hub",
    "postgres": "the PostgreSQL driver",
    "mysql": "the MySQL/MariaDB driver",
    "streams": "the stream clients (MQTT, NATS)",
    "traffic": "SUMO (traffic simulation)",
}
"""Each extra, as a person would name what it brings."""

EXTRA_OF = {
    "duckdb": "hub", "duckdb_extension_sqlite_scanner": "hub", "sqlglot": "hub",
    "fastapi": "hub", "starlette": "hub", "uvicorn": "hub", "numpy": "hub", "tomli_w": "hub",
    "http_sfv": "hub", "joserfc": "hub", "pygwire": "hub", "watchfiles": "hub",
    "psycopg": "postgres", "psycopg_pool": "postgres",
    "duckdb_extension_postgres_scanner": "postgres",
    "pymysql": "mysql", "duckdb_extension_mysql_scanner": "mysql",
    "paho": "streams", "nats": "streams",
    "sumo": "traffic", "libsumo": "traffic", "sumolib": "traffic",
}
"""Top-level module → the extra that installs it (the base installs the others)."""


def hint(error: ModuleNotFoundError) -> str | None:
    """One line naming the extra that provides the module ``error`` misses, or None when no
    extra of ours does (a missing module we did not expect: a real bug, shown as such)."""
    extra = EXTRA_OF.get((error.name or "").partition(".")[0])
    if extra is None:
        return None
    return f"this command needs {WHAT[extra]}: pip install 'zhongshu[{extra}]'"
