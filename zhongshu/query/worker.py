"""The second wall: DuckDB runs in worker processes that can read the sources and nothing else.

DuckDB's own settings are not enough (measured with DuckDB 1.5.5: after
``enable_external_access = false`` and ``lock_configuration = true`` the sqlite scanner still
ATTACHes any file and ``sqlite_scan()`` reads any file; ``COPY … TO`` writes into an allowed
directory). So every query on the DuckDB path runs in a separate process which:

1. reads the sources' passwords and runs once what queries will run (so that what they
   import lazily is loaded), with the hub's rights;
2. confines itself with Landlock (:mod:`zhongshu.query.wall`) to the sources' files and
   ports, the scanner extensions and its own scratch folder — root or not, wherever the city
   folder is — before its engine opens, so every thread DuckDB and its scanners start is
   inside;
3. attaches the sources through the wall and locks DuckDB down, then
4. when the hub runs as root and the city's files are readable by others, also drops to an
   unprivileged user (``nobody`` by default).

A worker that cannot confine itself says why; the hub then refuses to start
(:class:`~zhongshu.errors.SecondWallUnavailable`) unless ``[hub] unsafe_single_wall`` (the
``--unsafe-single-wall`` option) lets it serve on the firewall and DuckDB's settings alone,
which its health then reports as degraded.

Queries travel to a worker as SQL text and parameters; answers come back as Arrow IPC bytes
(and, when asked to describe, DuckDB's own type of each column: ``query.types``). A worker
that does not stop within a second of its time limit (DuckDB checks for interrupts while it
executes, not everywhere it plans) is killed, and replaced in the background.
"""

from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing
import os
import pwd
import queue
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from multiprocessing import popen_spawn_posix, resource_tracker, spawn, util
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any

import pyarrow as pa

from zhongshu.config import HubSettings, SourceConfig
from zhongshu.config.secrets import secret_env_name
from zhongshu.errors import QueryTimeout, SourceBusy, ZhongshuError
from zhongshu.query.types import ColumnType

log = logging.getLogger("zhongshu.worker")
_CTX = multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, picklable."""

    sources: list[tuple[SourceConfig, str, str]]  # (config, city root, owner)
    settings: HubSettings
    pseudonym_secret: bytes
    user: str | None
    generation: int


class WorkerError(Exception):
    """An engine error inside the worker, with DuckDB's exception class name."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _drop_privileges(pw: pwd.struct_passwd | None, tmp: Path) -> str:
    if pw is None or os.geteuid() != 0:
        return f"uid {os.geteuid()}"
    os.chown(tmp, pw.pw_uid, pw.pw_gid)
    os.setgroups([])
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    return pw.pw_name


def _warm_up() -> None:
    """Run once, before the wall, what the worker runs later — the pseudonym mask itself (a
    vectorised Python function building Arrow arrays), an Arrow answer of every kind of
    column, its IPC stream — so the modules DuckDB and pyarrow import lazily on those paths
    (pandas, among others) are loaded while their files can still be read."""
    import duckdb
    from duckdb.func import PythonUDFType
    from duckdb.sqltypes import VARCHAR

    from zhongshu.policy.masking import PSEUDONYM_FN, PseudonymKeys

    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                             "autoload_known_extensions": False})
    try:
        con.create_function(PSEUDONYM_FN, PseudonymKeys(bytes(32)).udf, [VARCHAR, VARCHAR],
                            VARCHAR, type=PythonUDFType.ARROW, side_effects=False)
        table = con.execute(
            f"SELECT {PSEUDONYM_FN}(k, x) AS v, 1.5::DECIMAL(10, 2) AS d, now() AS t, "
            "DATE '2026-01-01' AS day, INTERVAL 1 DAY AS i, uuid() AS u, [1, 2] AS l, "
            "{'a': 1} AS s, MAP {'k': 1} AS m, 'x'::BLOB AS b, 2::HUGEINT AS h "
            "FROM (VALUES ('a|p|fixed', 'a'), ('b|p|day', NULL), (NULL, 'c')) t(k, x)"
        ).to_arrow_table()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
        pa.ipc.open_stream(sink.getvalue()).read_all().to_pylist()
    finally:
        con.close()


def _with_passwords(sources: list[Any]) -> tuple[list[Any], dict[str, str]]:
    """The sources whose password (if any) could be read now — the wall leaves
    ``secrets.toml`` out of reach — and why each other one is down."""
    from zhongshu.sources.errors import failure_reason

    usable, failed = [], {}
    for src in sources:
        try:
            src.password()
            usable.append(src)
        except Exception as e:
            src.unavailable_message(e)  # logs why (no secret in it)
            failed[src.name] = failure_reason(e)
    return usable, failed


def _confine(sources: list[Any], tmp: Path) -> tuple[str | None, str]:
    """Build the wall around this worker before its engine opens (so that every thread
    DuckDB and its scanners start is inside it): (what holds, or None; why not, or "")."""
    from zhongshu.query import wall
    from zhongshu.sources import Reach

    reads: list[Path] = []
    ports: list[int] = []
    for src in sources:
        reach = src.reach()
        reads.extend(reach.read)
        ports.extend(reach.connect)
    try:
        return wall.confine(Reach(tuple(reads), tuple(ports)), tmp).describe(), ""
    except wall.WallError as e:
        return None, str(e)


def _type_ids(t: Any) -> tuple[str, ...]:
    """A DuckDB type's id, then those of every type nested in it (depth first)."""
    ids = [str(t.id)]
    if ids[0] in ("list", "array", "struct", "map", "union"):
        for _name, child in t.children:
            if hasattr(child, "id"):
                ids.extend(_type_ids(child))
    return tuple(ids)


def _serve(conn: Connection, spec: WorkerSpec) -> None:
    # imported here: the worker is a fresh interpreter (spawn); and before the wall, which
    # leaves no module file readable (what unpickling parameters needs is imported too)
    import datetime  # noqa: F401
    import decimal  # noqa: F401
    import encodings.idna  # noqa: F401  (what socket.connect imports: the drivers' probes)
    import uuid  # noqa: F401

    import duckdb

    from zhongshu.policy.masking import PseudonymKeys
    from zhongshu.query.engine import Engine
    from zhongshu.sources import open_source

    try:
        tmp = Path(tempfile.mkdtemp(prefix="zhongshu-worker-"))
        sources = [open_source(c, Path(root), owner) for c, root, owner in spec.sources]
        pw = pwd.getpwnam(spec.user) if spec.user else None
        sources, no_password = _with_passwords(sources)
        _warm_up()
        held, problem = _confine(sources, tmp)
        engine = Engine(sources, spec.settings, tmp, spec.generation,
                        PseudonymKeys.from_secret(spec.pseudonym_secret))
        engine.failed.update(no_password)
        runs_as = _drop_privileges(pw, tmp)
    except Exception as e:
        with contextlib.suppress(OSError):  # the hub may be gone already
            conn.send({"error": f"{type(e).__name__}: {e}"})
        return
    try:
        conn.send({"attached": engine.attached, "failed": engine.failed, "runs_as": runs_as,
                   "wall": held, "wall_problem": problem})
    except OSError:
        return  # the pool was closed while this worker started (a hub stopping)
    cur = engine.con.cursor()
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        sql, params, timeout, describe = msg
        timer = threading.Timer(timeout, cur.interrupt)
        timer.start()
        t0 = time.perf_counter()
        try:
            result = cur.execute(sql, list(params))
            types = [ColumnType(str(d[0]), str(d[1]), _type_ids(d[1]))
                     for d in result.description] if describe else None
            try:
                table = result.to_arrow_table()
            except duckdb.NotImplementedException:
                if types is None:
                    raise
                # a type with no Arrow export (VARIANT): its name is what was asked for
                conn.send(("ok", None, time.perf_counter() - t0, types))
                continue
            seconds = time.perf_counter() - t0
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as w:
                w.write_table(table)
            conn.send(("ok", sink.getvalue().to_pybytes(), seconds, types))
        except duckdb.Error as e:
            conn.send(("error", type(e).__name__, str(e), None))
        finally:
            timer.cancel()


# what a worker's interpreter, DuckDB and its drivers read from the environment and which
# holds no credential; everything else the hub has (its store URL, tokens, other sources'
# secrets, a cloud key) never reaches a worker
_KEPT_VARIABLES = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "PYTHONPATH",
                             "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED",
                             "SSL_CERT_FILE", "SSL_CERT_DIR", "PGSSLMODE", "PGSSLROOTCERT",
                             "PGSSLCERT", "PGSSLKEY", "PGSSLCRL", "PGCONNECT_TIMEOUT"})


def worker_environment(spec: WorkerSpec, hub: dict[str, str] | None = None) -> dict[str, str]:
    """The whole environment a worker starts with: the few variables in ``_KEPT_VARIABLES``
    (and ``LC_*``) as the hub has them, and ``ZHONGSHU_SECRET_<NAME>`` for exactly the secrets
    the worker's own sources name.

    >>> worker_environment(WorkerSpec([], HubSettings(), b"", None, 0),
    ...                    {"PATH": "/bin", "LC_ALL": "C", "ZHONGSHU_STORE_URL": "postgresql://u:p@h/d",
    ...                     "ZHONGSHU_SECRET_X": "s", "AWS_SECRET_ACCESS_KEY": "k"})
    {'PATH': '/bin', 'LC_ALL': 'C'}
    """
    hub = dict(os.environ) if hub is None else hub
    wanted = {secret_env_name(c.password_secret) for c, _root, _owner in spec.sources
              if c.password_secret}
    return {k: v for k, v in hub.items()
            if k in _KEPT_VARIABLES or k.startswith("LC_") or k in wanted}


def _closing_all_but(kept: set[int]) -> list[tuple[int, int]]:
    """``posix_spawn`` actions closing, in the child, every inheritable descriptor of the hub
    but ``kept`` (what ``close_fds`` does for :mod:`subprocess`)."""
    actions = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in kept:
            with contextlib.suppress(OSError):  # the listing's own descriptor, now closed
                if os.get_inheritable(fd):
                    actions.append((os.POSIX_SPAWN_CLOSE, fd))
    return actions


class _CleanPopen(popen_spawn_posix.Popen):
    """multiprocessing's spawn, except that the child is started (``posix_spawn``) with the
    environment its process names, not the hub's: the secrets travel in that environment,
    never on a command line, and ``/proc/<pid>/environ`` of a worker holds nothing else."""

    def _launch(self, process_obj: Any) -> None:
        env: dict[str, str] = process_obj.__dict__.pop("_environment")
        tracker = resource_tracker.getfd()
        if tracker is None:
            raise ZhongshuError("multiprocessing's resource tracker did not start")
        tracker_fd = os.dup(tracker)
        prep_data = spawn.get_preparation_data(process_obj._name)
        fp = io.BytesIO()
        popen_spawn_posix.set_spawning_popen(self)  # type: ignore[attr-defined]
        try:
            popen_spawn_posix.reduction.dump(prep_data, fp)  # type: ignore[attr-defined]
            popen_spawn_posix.reduction.dump(process_obj, fp)  # type: ignore[attr-defined]
        finally:
            popen_spawn_posix.set_spawning_popen(None)  # type: ignore[attr-defined]
        parent_r, child_w = os.pipe()
        child_r, parent_w = os.pipe()
        try:
            # ours alone (with what pickling the process handed over): inherited by this child
            for fd in (tracker_fd, child_r, child_w, *self._fds):  # type: ignore[attr-defined]
                os.set_inheritable(fd, True)
            cmd = spawn.get_command_line(tracker_fd=tracker_fd, pipe_handle=child_r)
            kept = {tracker_fd, child_r, child_w, *self._fds}  # type: ignore[attr-defined]
            self.pid = os.posix_spawn(spawn.get_executable(), cmd, env,
                                      file_actions=_closing_all_but(kept))
            self.sentinel = parent_r
            with open(parent_w, "wb", closefd=False) as f:
                f.write(fp.getbuffer())
        finally:
            close: Any = util.close_fds  # type: ignore[attr-defined]
            self.finalizer = util.Finalize(self, close, [parent_r, parent_w])
            for fd in (tracker_fd, child_r, child_w):
                os.close(fd)


class _CleanProcess(SpawnProcess):
    """A spawned process that starts with ``environment`` as its whole environment."""

    def __init__(self, environment: dict[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._environment = environment

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _CleanPopen(process_obj)


class _Process:
    """One worker process: started on construction; :meth:`wait` for it to be ready (several
    start side by side: each spends its first seconds importing)."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.conn, child = _CTX.Pipe()
        self.proc = _CleanProcess(worker_environment(spec), target=_serve, args=(child, spec),
                                  daemon=True, name="zhongshu-duckdb-worker")
        self.proc.start()
        child.close()
        self.ready: dict[str, Any] = {}

    def wait(self) -> _Process:
        """Wait until the worker is ready; kill it and raise when it does not start."""
        try:
            if not self.conn.poll(120):
                raise EOFError
            self.ready = self.conn.recv()
        except (EOFError, OSError):
            self.kill()
            raise ZhongshuError("the DuckDB worker process did not start; see the hub's "
                                "log") from None
        if "error" in self.ready:
            self.kill()
            raise ZhongshuError(f"the DuckDB worker could not start: {self.ready['error']}")
        return self

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


class WorkerPool:
    """A few worker processes, each answering one query at a time. A pool may be shared
    (:meth:`share`: a reloaded configuration whose sources did not change keeps its
    workers); it stops when its last holder closes it."""

    def __init__(self, spec: WorkerSpec, size: int) -> None:
        self.spec = spec
        self.generation = spec.generation
        self._idle: queue.Queue[_Process] = queue.Queue()
        self._all: list[_Process] = []
        self._closed = False
        self._holders = 1
        self._holders_lock = threading.Lock()
        started = [_Process(spec) for _ in range(size)]
        try:
            for p in started:
                p.wait()
        except ZhongshuError:
            for p in started:
                p.kill()
            raise
        for p in started:
            self._all.append(p)
            self._idle.put(p)
        first = self._all[0].ready
        self.attached: dict[str, str] = first["attached"]
        self.failed: dict[str, str] = first["failed"]
        self.runs_as: str = first["runs_as"]
        #: what confines the workers (None: nothing but DuckDB's settings), and why not
        self.wall: str | None = first["wall"]
        self.wall_problem: str = first["wall_problem"]

    # how long past its time limit a worker may take to answer before it is killed
    GRACE_S = 1.0

    def execute(self, sql: str, params: list[Any], timeout_s: float) -> tuple[pa.Table, float]:
        """Run ``sql`` in a worker; return the table and the seconds it ran.

        Raises:
            WorkerError: DuckDB refused or failed the query (its class name in ``kind``).
            QueryTimeout: past ``timeout_s`` (the worker interrupts DuckDB itself; one that
                does not answer within ``GRACE_S`` after is killed and replaced).
            SourceBusy: no worker became free within ``timeout_s``.
        """
        table, seconds, _ = self._run(sql, params, timeout_s, describe=False)
        assert isinstance(table, pa.Table)
        return table, seconds

    def describe(self, sql: str, params: list[Any], timeout_s: float
                 ) -> tuple[pa.Table | None, list[ColumnType]]:
        """Run ``sql`` (a query that returns no rows, e.g. ``… LIMIT 0``): its (empty) table
        — None when DuckDB cannot export a column to Arrow — and DuckDB's type of each
        column. Raises as :meth:`execute`."""
        table, _, types = self._run(sql, params, timeout_s, describe=True)
        assert types is not None
        return table, types

    def _run(self, sql: str, params: list[Any], timeout_s: float, describe: bool
             ) -> tuple[Any, float, list[ColumnType] | None]:
        t0 = time.monotonic()
        try:
            worker = self._idle.get(timeout=timeout_s)
        except queue.Empty:
            raise SourceBusy("every DuckDB worker is busy; try again shortly") from None
        left = max(timeout_s - (time.monotonic() - t0), 0.001)
        try:
            worker.conn.send((sql, params, left, describe))
            if not worker.conn.poll(left + self.GRACE_S):
                raise TimeoutError
            status, a, b, types = worker.conn.recv()
        except (TimeoutError, EOFError, OSError, BrokenPipeError):
            worker.kill()
            self._replace(worker)  # in the background: the answer does not wait for it
            raise QueryTimeout(f"the query exceeded the hub's time limit of {timeout_s:g} s"
                               ) from None
        self._idle.put(worker)
        if status == "error":
            raise WorkerError(a, b)
        table = None if a is None else pa.ipc.open_stream(a).read_all()
        return table, b, types

    def _replace(self, dead: _Process) -> None:
        """Start a worker in place of a dead one, in a thread; it is idle once ready."""
        def start() -> None:
            while not self._closed:
                try:
                    fresh = _Process(self.spec).wait()
                except ZhongshuError:
                    log.exception("a DuckDB worker could not be replaced; retrying")
                    time.sleep(1)
                    continue
                self._all = [fresh if p is dead else p for p in self._all]
                if self._closed:
                    fresh.kill()
                else:
                    self._idle.put(fresh)
                return

        threading.Thread(target=start, daemon=True, name="zhongshu-worker-replace").start()

    def serves(self, spec: WorkerSpec) -> bool:
        """Whether this pool's workers are what ``spec`` asks for (its generation aside)."""
        return not self._closed and replace(spec, generation=0) == replace(self.spec,
                                                                             generation=0)

    def share(self) -> WorkerPool:
        """One more holder of this pool (it stops when every holder has closed it)."""
        with self._holders_lock:
            if self._closed:
                raise ZhongshuError("the DuckDB workers were stopped")
            self._holders += 1
        return self

    def close(self) -> None:
        """Stop every worker, once no other holder keeps the pool."""
        with self._holders_lock:
            self._holders -= 1
            if self._holders > 0:
                return
        self._closed = True
        for p in self._all:
            try:
                p.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
            p.proc.join(2)
            p.kill()
