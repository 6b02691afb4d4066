"""What every kind of source implements, and the optional abilities some kinds have.

A source is a department's existing system. The hub only ever reads it. Every kind
(:class:`Source`) implements:

* ``attach(con)`` — make it visible to a DuckDB engine, read-only, under ``self.alias``;
* ``relation(table)`` — name one of its tables inside that engine;
* ``datasets()`` / ``schema(table)`` — the tables it offers and their columns;
* ``health()`` — ``"ok"`` or ``"down: REASON"`` (from ``probe()``, a cheap round trip);
* ``classify(exc)`` / ``translate(exc)`` — its driver's errors, translated in one place.

Optional abilities are small mixins, tested with ``isinstance`` (as ibis's ``CanListCatalog``):

* :class:`NativeSQL` — a SQL engine of its own that the hub pushes whole governed queries
  down to, through the source's driver on a read-only connection (SQLite, PostgreSQL, MySQL);
* :class:`Files` — data in files under the city folder (SQLite, Parquet, CSV);
* :class:`Streaming` — a message stream (MQTT, NATS) whose records ``zhongshu.streams`` folds
  into windows; its datasets are the windows it feeds.

Each source has a concurrency cap (``slot()``) and a source-side statement timeout, so the hub
can never overload a department's production system.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import duckdb
from sqlglot import exp

from zhongshu.config import Column, MemberFile, SourceConfig, StreamConfig, read_secret
from zhongshu.config import stream_columns as _stream_columns
from zhongshu.config import stream_store as _stream_store
from zhongshu.errors import QueryInvalid, QueryTimeout, SourceBusy, SourceUnavailable, ZhongshuError
from zhongshu.sources import _extensions
from zhongshu.sources._types import compatible, sql_literal, type_family
from zhongshu.sources.errors import (
    Failure,
    engine_failure,
    failure_reason,
    generic_failure,
    safe_message,
)

log = logging.getLogger("zhongshu.sources")

Rows = list[tuple[Any, ...]]

__all__ = ["Failure", "Files", "NativeSQL", "Rows", "Source", "Streaming", "Subscriber",
           "attach_alias", "compatible", "sql_literal", "type_family"]


@dataclass(frozen=True)
class Reach:
    """What an engine must still reach once a source is attached (the second wall,
    ``zhongshu.query.wall``, lets it reach nothing else)."""

    read: tuple[Path, ...] = ()  # files or folders, read-only
    connect: tuple[int, ...] = ()  # TCP ports


def sqlite_files(path: Path) -> tuple[Path, ...]:
    """``path`` and, beside it, the journals SQLite reads with it that exist now."""
    return (path, *(j for suffix in ("-wal", "-shm", "-journal")
                    for j in [path.with_name(path.name + suffix)] if j.exists()))


def attach_alias(source_name: str) -> str:
    """The catalog (or schema) name under which a source appears inside DuckDB.

    >>> attach_alias("traffic-police-db")
    'src_traffic_police_db'
    """
    return "src_" + re.sub(r"[^a-z0-9_]", "_", source_name.lower())


def scratch_engine() -> duckdb.DuckDBPyConnection:
    """A private DuckDB connection that loads nothing by itself (for introspection)."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    con.execute("SET enable_progress_bar = false")
    return con


class Source(ABC):
    """Base of every source kind: subclasses set ``kind`` (the name they are registered under
    in the ``zhongshu.sources`` entry point group) and implement the abstract methods."""

    kind: ClassVar[str]

    def __init__(self, config: SourceConfig, city_root: Path, owner: str) -> None:
        self.config = config
        self.name = config.name
        self.owner = owner
        self.city_root = city_root
        self.alias = attach_alias(config.name)
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._secret_cache: str | None = None

    # --- what every kind implements -------------------------------------------------------

    @abstractmethod
    def attach(self, con: duckdb.DuckDBPyConnection) -> None:
        """Attach this source to ``con`` read-only, under ``self.alias``.

        Raises:
            Exception: the driver's own error when the source cannot be reached.
        """

    @abstractmethod
    def relation(self, table: str) -> exp.Table:
        """The DuckDB-side reference to ``table`` once attached."""

    @abstractmethod
    def probe(self) -> None:
        """Raise if the source cannot be reached right now (a cheap round trip)."""

    def datasets(self) -> list[str]:
        """The tables (or views, or file stems) this source offers, which datasets may be
        declared over; read through a private engine it is attached to.

        Raises:
            Exception: the driver's own error when the source cannot be reached.
        """
        rel = self.relation("_")
        with self._scratch() as con:
            rows = con.execute("SELECT table_name FROM information_schema.tables "
                               "WHERE table_catalog = ? AND table_schema = ? ORDER BY 1",
                               [rel.catalog, rel.db]).fetchall()
        return [r[0] for r in rows]

    def schema(self, table: str) -> dict[str, str]:
        """Column name → DuckDB type of ``table``, as the source holds it now.

        Raises:
            Exception: the driver's own error when the source or the table cannot be read.
        """
        with self._scratch() as con:
            return self.columns(con, table)

    def health(self) -> str:
        """``"ok"`` or ``"down: REASON"``, the reason from a closed set
        (:func:`~zhongshu.sources.errors.failure_reason`): never a path, host or secret."""
        try:
            self.probe()
            return "ok"
        except Exception as e:
            log.debug("source %s: %s", self.name, self.redact(_first_line(e)))
            return "down: " + failure_reason(e)

    # --- configuration --------------------------------------------------------------------

    @classmethod
    def check_config(cls, config: SourceConfig | StreamConfig) -> None:
        """Refuse a configuration this kind cannot serve (run when the city is loaded).

        Raises:
            ValueError: what to change, in one sentence.
        """
        if isinstance(config, StreamConfig):
            raise ValueError(f"`{cls.kind}` is not a streaming kind; declare it under "
                             "[[sources]]")
        if config.path and not issubclass(cls, Files):
            raise ValueError(f"a {cls.kind} source reads no files; remove `path`")

    # --- errors ---------------------------------------------------------------------------

    def driver_failure(self, exc: BaseException) -> Failure | None:
        """What ``exc`` from this kind's own driver means, or None if it is not one of its
        errors (kinds override this; see ``zhongshu/sources/<kind>/errors.py``)."""
        return None

    def classify(self, exc: BaseException) -> Failure:
        """``transient`` (the source could not be reached or dropped the connection: retry on
        a fresh connection, or mark it down), ``timeout`` (a statement time limit) or
        ``terminal`` (the query's own fault) — for an error of this source's driver, of
        DuckDB reading it (raised in process, or reported by a worker as ``kind``), or of
        the operating system."""
        if isinstance(exc, ZhongshuError):
            return "transient" if isinstance(exc, SourceUnavailable) else (
                "timeout" if isinstance(exc, QueryTimeout) else "terminal")
        return (self.driver_failure(exc) or engine_failure(exc) or generic_failure(exc)
                or "terminal")

    def is_transient(self, exc: BaseException) -> bool:
        """Whether ``exc`` means this source failed, not the query (see :meth:`classify`)."""
        return self.classify(exc) == "transient"

    def translate(self, exc: BaseException) -> ZhongshuError:
        """The protocol error to raise for ``exc``, with ``exc`` as its ``__cause__``:
        ``SourceUnavailable`` (transient), ``QueryTimeout`` or ``QueryInvalid`` (terminal).
        Messages hold no password, quoted value or internal name."""
        if isinstance(exc, ZhongshuError):
            return exc
        failure = self.classify(exc)
        err: ZhongshuError
        if failure == "transient":
            err = SourceUnavailable(self.unavailable_message(exc))
        elif failure == "timeout":
            err = QueryTimeout(f"the query exceeded the statement timeout of source "
                               f"`{self.name}`")
        else:
            err = QueryInvalid("the query could not be run: "
                               + safe_message(self.redact(_first_line(exc))))
        err.__cause__ = exc
        return err

    # --- shared behaviour -----------------------------------------------------------------

    @contextmanager
    def slot(self, timeout_s: float, wait: bool = True) -> Iterator[None]:
        """Hold one of this source's ``max_concurrency`` slots for the duration.

        Raises:
            SourceBusy: no slot freed up within ``timeout_s`` (at once when not ``wait``).
        """
        got = self._slots.acquire(timeout=timeout_s) if wait else self._slots.acquire(False)
        if not got:
            raise SourceBusy(f"source `{self.name}` is at its concurrency cap "
                             f"({self.config.max_concurrency}); try again shortly")
        try:
            yield
        finally:
            self._slots.release()

    def columns(self, con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
        """Column name → DuckDB type of ``table``, read through an attached engine."""
        rel = self.relation(table).sql("duckdb")
        return {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()}

    def allowed_paths(self) -> list[str]:
        """Folders DuckDB's own file readers must still reach once its configuration is
        locked (none, but for kinds read by those readers: see :class:`Files`)."""
        return []

    def reach(self) -> Reach:
        """What an engine this source is attached to must still reach behind the second wall
        (:mod:`zhongshu.query.wall`): files read, TCP ports connected. Nothing by default: a
        kind whose engine reads files or a server after attaching says which."""
        return Reach()

    def close(self) -> None:
        """Release what the source holds open (nothing, but for pooled connections)."""
        return None

    def create_secret(self, con: duckdb.DuckDBPyConnection, kind: str, host: str, port: int,
                      database: str, user: str) -> str:
        """A DuckDB secret holding this source's connection and password (shown redacted by
        DuckDB); returns its name. The password never enters an attach string."""
        name = f"{self.alias}_secret"
        parts = [f"HOST {sql_literal(host)}", f"PORT {int(port)}",
                 f"DATABASE {sql_literal(database)}", f"USER {sql_literal(user)}"]
        pw = self.password()
        if pw is not None:
            parts.append(f"PASSWORD {sql_literal(pw)}")
        con.execute(f"CREATE OR REPLACE SECRET {name} (TYPE {kind}, {', '.join(parts)})")
        return name

    def with_password(self, params: dict[str, Any]) -> dict[str, Any]:
        """Driver connection parameters, with the password added when the source has one."""
        pw = self.password()
        return {**params, "password": pw} if pw is not None else params

    def password(self) -> str | None:
        """The source's password from secrets, or None when it has none."""
        if not self.config.password_secret:
            return None
        if self._secret_cache is None:
            self._secret_cache = read_secret(self.city_root, self.config.password_secret)
        return self._secret_cache

    def redact(self, text: str) -> str:
        """``text`` with this source's password and any ``password=…`` removed."""
        pw = self._secret_cache
        if pw:
            text = text.replace(pw, "***")
        return re.sub(r"(?i)(password|passwd)\s*=\s*\S+", r"\1=***", text)

    def unavailable_message(self, err: BaseException) -> str:
        """A safe, one-line explanation for a failure to reach this source: its name and a
        reason from a closed set (no path, host or secret; the driver's own text, password
        removed, goes to the hub's log)."""
        log.warning("source %s: %s", self.name, self.redact(_first_line(err)))
        return f"source `{self.name}` is unavailable: {failure_reason(err)}"

    @contextmanager
    def _scratch(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = scratch_engine()
        try:
            self.attach(con)
            yield con
        finally:
            con.close()


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# --- abilities ----------------------------------------------------------------------------


class Files(Source):
    """A kind whose data is files under the city folder (``path``: a file or a folder)."""

    @classmethod
    def check_config(cls, config: SourceConfig | StreamConfig) -> None:
        super().check_config(config)
        assert isinstance(config, SourceConfig)
        if not config.path:
            raise ValueError(f"a {cls.kind} source needs `path` (file or folder, relative to "
                             "the city folder)")

    def path(self) -> Path:
        """The source's file or folder, resolved against the city folder."""
        assert self.config.path
        p = Path(self.config.path)
        return p if p.is_absolute() else (self.city_root / p)

    def reach(self) -> Reach:
        """The source's file or folder."""
        return Reach(read=(self.path(),))


class NativeSQL(Source):
    """A kind with a SQL engine of its own (``dialect``, a sqlglot dialect name): the hub
    pushes a governed query that touches only this source down to it whole, through the
    source's driver on a pooled read-only connection, under the concurrency cap."""

    dialect: ClassVar[str]

    def __init__(self, config: SourceConfig, city_root: Path, owner: str) -> None:
        super().__init__(config, city_root, owner)
        self._pool: queue.LifoQueue[Any] = queue.LifoQueue()
        # hub functions the engine can run in-process (SQLite): name → (function, arity)
        self.functions: dict[str, tuple[Callable[..., Any], int]] = {}

    @abstractmethod
    def connect_native(self) -> Any:
        """Open a new read-only native connection.

        Raises:
            Exception: the driver's own error when the source cannot be reached.
        """

    @abstractmethod
    def run_native(self, conn: Any, sql: str, params: Sequence[Any],
                   timeout_s: float) -> tuple[list[str], Rows]:
        """Run ``sql`` on ``conn`` and return column names and rows (driver errors escape)."""

    def native_relation(self, table: str) -> exp.Table:
        """The reference to ``table`` in SQL sent through the native driver."""
        return exp.to_table(table)

    def placeholder(self, index: int) -> str:
        """How the native driver spells positional parameter ``index`` (0-based)."""
        return f"${index + 1}"

    def execute_native(self, sql: str, params: Sequence[Any], timeout_s: float,
                       wait: bool = True) -> tuple[list[str], Rows, float]:
        """Run a governed query through the source's own driver, read-only, under the cap.

        Returns:
            column names, rows, and the seconds spent running (not waiting for a slot).

        Raises:
            SourceBusy: no slot within ``timeout_s``.
            SourceUnavailable: no connection could be opened.
            QueryTimeout: the source's statement time limit stopped the query.
            Exception: any other error of the driver, as raised (the connection is discarded;
                :meth:`translate` says what it means).
        """
        with self.slot(timeout_s, wait):
            conn = self._checkout()
            ok = False
            t0 = time.perf_counter()
            try:
                names, rows = self.run_native(conn, sql, params, timeout_s)
                ok = True
                return names, rows, time.perf_counter() - t0
            except Exception as e:
                if self.classify(e) == "timeout":
                    ok = True  # the session survives its own statement timeout
                    raise self.translate(e) from e
                raise
            finally:
                if ok:
                    self._pool.put(conn)
                else:
                    self._discard(conn)

    def _checkout(self) -> Any:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            try:
                return self.connect_native()
            except Exception as e:
                raise SourceUnavailable(self.unavailable_message(e)) from e

    def _discard(self, conn: Any) -> None:
        try:
            conn.close()
        except Exception:
            pass

    def close(self) -> None:
        """Close pooled native connections."""
        while True:
            try:
                self._discard(self._pool.get_nowait())
            except queue.Empty:
                return


class Subscriber(Protocol):
    """One stream's subscription, delivering every message to ``zhongshu.streams``."""

    connected: bool

    def start(self) -> None: ...

    def stop(self) -> None: ...


Deliver = Callable[..., None]


class Streaming(Source):
    """A department's message stream (subscribing is reading). Its records are folded into
    windows by ``zhongshu.streams``; the windows live in the owner's window store, which
    :meth:`attach` shows read-only, and its :meth:`datasets` are the window tables it feeds.

    Declared under ``[[streams]]`` (a :class:`StreamConfig`), not ``[[sources]]``.
    """

    default_port: ClassVar[int]

    def __init__(self, stream: StreamConfig, member: MemberFile, city_root: Path) -> None:
        config = SourceConfig(name=stream.name, kind=stream.kind, host=stream.host,
                              port=stream.port or self.default_port)
        super().__init__(config, city_root, member.member.name)
        self.stream = stream
        self.member = member

    @classmethod
    def check_config(cls, config: SourceConfig | StreamConfig) -> None:
        if not isinstance(config, StreamConfig):
            raise ValueError(f"`{cls.kind}` is a streaming kind; declare it under [[streams]]")

    @abstractmethod
    def subscriber(self, client_id: str, deliver: Deliver) -> Subscriber:
        """A subscription (not started) handing each message to ``deliver(stream, payload,
        ack[, seq])``; ``client_id`` names the hub's session or durable consumer."""

    @property
    def port(self) -> int:
        return self.stream.port or self.default_port

    def feeds(self) -> list[str]:
        """This stream's name and those of its pairs (what aggregates may read)."""
        return [self.stream.name, *(p.name for p in self.stream.pairs)]

    def record_columns(self) -> list[Column]:
        """The columns of one record, lookups included."""
        return _stream_columns(self.member)[self.stream.name]

    def window_store(self) -> Path:
        """The owner's window store (a SQLite file written by ``zhongshu.streams``)."""
        return self.city_root / _stream_store(self.owner)

    def reach(self) -> Reach:
        """The window store, its journals, and the sqlite scanner."""
        return Reach(read=(*sqlite_files(self.window_store()),
                           _extensions.extension_path("sqlite_scanner")))

    def attach(self, con: duckdb.DuckDBPyConnection) -> None:
        """Attach the owner's window store read-only (a missing store is an error)."""
        store = self.window_store()
        if not store.is_file():
            raise FileNotFoundError(f"no window store yet: {store.name}")
        _extensions.load(con, "sqlite_scanner")
        con.execute(f"ATTACH {sql_literal(str(store))} AS {self.alias} "
                    "(TYPE sqlite, READ_ONLY)")

    def relation(self, table: str) -> exp.Table:
        return exp.table_(table, db="main", catalog=self.alias, quoted=True)

    def datasets(self) -> list[str]:
        """The window tables this stream feeds (one per aggregate over it or its pairs), then
        the table of its rejected messages."""
        feeds = set(self.feeds())
        return [*(a.dataset.replace(".", "__") for a in self.member.aggregates
                  if a.stream in feeds),
                f"rejected__{self.stream.name.replace('-', '_')}"]

    def schema(self, table: str) -> dict[str, str]:
        """Column name → type of one of :meth:`datasets`, as the configuration declares it
        (derived columns, computed when read, are not stored)."""
        if table not in self.datasets():
            raise KeyError(f"stream `{self.name}` feeds no table `{table}`")
        ds = next(d for d in self.member.datasets if d.table == table)
        return {c.name: c.type for c in ds.columns if not c.expr}
