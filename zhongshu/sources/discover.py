"""Looking at a source before any dataset is declared over it: where a URL points, which
tables it holds, their columns and types, and a bounded sample of their rows — all read
through the kind's own adapter, on read-only connections.

URLs::

    postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?schema=SCHEMA]   (or postgres://)
    mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE                         (or mariadb://)
    sqlite:///PATH/TO/FILE.db          (a relative path, sqlite:FILE.db, is the city folder's)
    file:///PATH/TO/FOLDER             (its .parquet and .csv files, or folders of them)

The password, if the URL has one, is handed back apart (:attr:`Location.password`): it goes
into ``secrets.toml``, never into a configuration file, a message or a log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sqlglot import exp

from zhongshu.config import SourceConfig
from zhongshu.errors import BadRequest, SourceUnavailable
from zhongshu.sources.base import NativeSQL, Source, scratch_engine
from zhongshu.sources.registry import open_source

SAMPLE_ROWS = 200
"""Rows read from each table at most, to propose its columns' classifications."""

_SCHEMES = {"postgresql": "postgres", "postgres": "postgres", "mysql": "mysql",
            "mariadb": "mysql", "sqlite": "sqlite", "file": "file"}
_FOLDER_KINDS = ("parquet", "csv")


@dataclass(frozen=True)
class Location:
    """Where a URL points: one source kind and its configuration keys (a folder holding
    both Parquet and CSV files gives two kinds), the password apart."""

    scheme: str  # postgres, mysql, sqlite or file
    kinds: tuple[str, ...]
    fields: dict[str, Any]
    password: str | None = field(default=None, repr=False)

    def config(self, name: str, kind: str, password_secret: str | None = None) -> SourceConfig:
        """The ``[[sources]]`` entry named ``name`` for one of :attr:`kinds`."""
        data: dict[str, Any] = {**self.fields, "name": name, "kind": kind}
        if password_secret:
            data["password_secret"] = password_secret
        return SourceConfig.model_validate(data)

    def shown(self) -> str:
        """The location as a URL without any password (safe to print)."""
        f = self.fields
        if "path" in f:
            return f"{self.scheme}://{f['path']}" if Path(f["path"]).is_absolute() \
                else f"{self.scheme}:{f['path']}"
        who = f"{f['user']}@" if f.get("user") else ""
        return f"{self.scheme}://{who}{f['host']}:{f['port']}/{f['database']}"


def locate(url: str, city_root: Path) -> Location:
    """Where ``url`` points (nothing is connected).

    Raises:
        BadRequest: the URL is not one of the shapes above, or its file or folder is
            missing (the message never repeats a password).
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise BadRequest("not a URL: give postgresql://USER@HOST:PORT/DATABASE, "
                         "mysql://…, sqlite:///FILE or file:///FOLDER") from None
    scheme = parts.scheme.lower()
    kind = _SCHEMES.get(scheme)
    if kind is None:
        raise BadRequest(f"unknown URL scheme `{scheme or '(none)'}`: give postgresql://, "
                         "mysql://, sqlite:/// or file:///")
    password = unquote(parts.password) if parts.password is not None else None
    if kind in ("sqlite", "file"):
        if parts.netloc not in ("", "localhost"):
            raise BadRequest(f"a {scheme} URL names a local path ({scheme}:///PATH), not a "
                             "host")
        if parts.query:
            raise BadRequest(f"a {scheme} URL takes no parameters")
        path = _local(unquote(parts.path), city_root)
        if kind == "sqlite":
            if not path.is_file():
                raise BadRequest(f"no SQLite file at {path}")
            return Location("sqlite", ("sqlite",), {"path": _relative(path, city_root)})
        if not path.is_dir():
            raise BadRequest(f"no folder at {path}")
        kinds = tuple(k for k in _FOLDER_KINDS if _has_files(path, k))
        if not kinds:
            raise BadRequest(f"no .parquet or .csv files in {path} (nor in its folders)")
        return Location("file", kinds, {"path": _relative(path, city_root)})
    database = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not database or "/" in database:
        raise BadRequest(f"give the host and the database: {scheme}://USER@HOST:PORT/DATABASE")
    query = parse_qs(parts.query)
    unknown = set(query) - ({"schema"} if kind == "postgres" else set())
    if unknown:
        raise BadRequest(f"unknown URL parameter(s): {', '.join(sorted(unknown))}"
                         + (" (only ?schema=NAME)" if kind == "postgres" else ""))
    fields: dict[str, Any] = {"host": parts.hostname,
                              "port": port or (5432 if kind == "postgres" else 3306),
                              "database": database}
    if parts.username:
        fields["user"] = unquote(parts.username)
    if "schema" in query:
        fields["schema"] = query["schema"][-1]
    return Location(kind, (kind,), fields, password or None)


_DEFAULTS = {"postgres": (5432, "postgres", "public"), "mysql": (3306, "root", None)}


def same_system(a: SourceConfig, b: SourceConfig, city_root: Path) -> bool:
    """Whether two ``[[sources]]`` entries reach the same system, defaults filled in
    (``port``, ``user``, ``schema``; paths resolved against the city folder).

    >>> x = SourceConfig(name="a", kind="postgres", database="parks")
    >>> same_system(x, SourceConfig(name="b", kind="postgres", database="parks", port=5432,
    ...                             user="postgres", schema="public"), Path("."))
    True
    """
    def key(c: SourceConfig) -> tuple[Any, ...]:
        port, user, schema = _DEFAULTS.get(c.kind, (None, None, None))
        path = _local(c.path, city_root) if c.path else None
        return (c.kind, path, None if path else c.host, c.port or port, c.database,
                c.user or user, c.schema_ or schema)

    return key(a) == key(b)


def _local(text: str, city_root: Path) -> Path:
    p = Path(text)
    if not text.startswith("/"):
        p = city_root / p
    return p.resolve()


def _relative(path: Path, city_root: Path) -> str:
    """``path`` relative to the city folder when it is inside it, else absolute."""
    try:
        return str(path.relative_to(city_root.resolve()))
    except ValueError:
        return str(path)


def _has_files(folder: Path, ext: str) -> bool:
    return any(folder.glob(f"*.{ext}")) or any(p.is_dir() and any(p.glob(f"*.{ext}"))
                                               for p in folder.iterdir())


@dataclass(frozen=True)
class TableShape:
    """One table as the source holds it: column → DuckDB type, and the rows sampled."""

    table: str
    columns: dict[str, str]
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True)
class Shapes:
    """What a source holds: the tables read, and those that could not be (with why)."""

    tables: list[TableShape]
    unreadable: list[tuple[str, str]]


def open_located(config: SourceConfig, city_root: Path, owner: str,
                 password: str | None) -> Source:
    """The adapter of a located source, holding ``password`` for this process only (it is
    not read from secrets.toml, which may not hold it yet)."""
    src = open_source(config, city_root, owner)
    src._secret_cache = password
    return src


def read_shapes(src: Source, sample: int = SAMPLE_ROWS) -> Shapes:
    """Every table of ``src`` with its columns and at most ``sample`` rows, read-only:
    types through a private DuckDB engine the source is attached to (as the hub will read
    them), rows through the source's own read-only driver where it has one.

    Raises:
        SourceUnavailable: the source cannot be reached or listed (a reason from a closed
            set: no host, path or password).
    """
    try:
        tables = src.datasets()
    except Exception as e:
        raise SourceUnavailable(src.unavailable_message(e)) from e
    shapes, unreadable = [], []
    con = scratch_engine()
    try:
        try:
            src.attach(con)
        except Exception as e:
            raise SourceUnavailable(src.unavailable_message(e)) from e
        for table in tables:
            try:
                columns = src.columns(con, table)
                rows = _sample(src, con, table, list(columns), sample)
            except Exception as e:
                unreadable.append((table, src.translate(e).message))
                continue
            shapes.append(TableShape(table, columns, rows))
    finally:
        con.close()
        src.close()
    return Shapes(shapes, unreadable)


def _sample(src: Source, con: Any, table: str, columns: list[str], n: int
            ) -> list[tuple[Any, ...]]:
    """The first ``n`` rows of ``table``, its columns in order."""
    cols = [exp.column(c, quoted=True) for c in columns]
    if isinstance(src, NativeSQL):
        sql = exp.select(*cols).from_(src.native_relation(table)).limit(n).sql(src.dialect)
        _, rows, _ = src.execute_native(sql, (), src.config.statement_timeout_s)
        return [tuple(r) for r in rows]
    sql = exp.select(*cols).from_(src.relation(table)).limit(n).sql("duckdb")
    return [tuple(r) for r in con.execute(sql).fetchall()]
