"""Configuration changes without a restart: a serving hub follows its city folder.

``Reloader`` watches the files an owner edits — ``city.toml``, ``secrets.toml``,
``cockpit.toml``, ``members/*.toml`` and ``geo/`` (``watchfiles``; never ``data/`` or
``state/``) — and, a moment after they settle, loads the whole city again. A configuration
that loads and checks is applied as a whole: a new node over the same stores, ledger and
streams, its query service (new or changed datasets checked against their sources, fresh
DuckDB workers confined to the new sources' reach) and its protocol application, swapped in behind
:class:`Swap` between two requests; the old query service is closed once the exchanges it
was running have had their time limit. A configuration that does not load is refused with
its file and line, logged, and shown in the operators' health (``config``), while the last
good one keeps serving. Each applied change is a governance change on the ledger first
(``config.apply``: the digests of the files that changed, and the datasets whose declaration or
grants changed — their owners see it in their usage); a change the ledger cannot record is
refused.

What a swap does not change is named in ``config.restart_needed``: the streams (their
subscriptions are kept), the ledger's settings, and the listening ports.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zhongshu.config import City, load_city
from zhongshu.errors import ZhongshuError
from zhongshu.node import Node

if TYPE_CHECKING:
    from fastapi import FastAPI

    from zhongshu.protocol.pgwire import Endpoint

log = logging.getLogger("zhongshu.reload")

WATCHED_FILES = ("city.toml", "secrets.toml", "cockpit.toml")
"""The files at the top of a city folder whose change reloads the configuration."""
WATCHED_FOLDERS = ("members", "geo")
"""The folders (not recursive) whose files' change reloads the configuration."""
SETTLE_MS = 300
"""How long the files must be quiet before a change is read (an editor's save is several
writes)."""

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Build = Callable[[Node, Callable[[], dict[str, Any]]], "FastAPI"]


class Swap:
    """An ASGI application that passes every request to the application in force now;
    a request keeps the application it started with."""

    def __init__(self, app: FastAPI) -> None:
        self.current = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.current(scope, receive, send)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def digests(root: Path) -> dict[str, str]:
    """SHA-256 of each configuration file a reload reads (``secrets.toml`` left out: not even
    a digest of a secret goes on the ledger), by path relative to ``root``."""
    files = [root / f for f in WATCHED_FILES if f != "secrets.toml"]
    files += [p for d in WATCHED_FOLDERS for p in sorted((root / d).glob("*"))]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files if p.is_file()}


def changed_datasets(old: City, new: City) -> list[str]:
    """The datasets whose declaration, or a grant on which, differs between two
    configurations (added and removed ones included)."""
    before, after = old.datasets(), new.datasets()
    changed = {n for n in set(before) | set(after)
               if (before.get(n) or (None, None))[1] != (after.get(n) or (None, None))[1]}

    def grants(city: City) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for mf in city.members.values():
            for g in mf.grants:
                for ds in g.datasets:
                    out.setdefault(ds, []).append(g.model_dump(mode="json"))
        return out

    g0, g1 = grants(old), grants(new)
    changed |= {n for n in set(g0) | set(g1) if g0.get(n) != g1.get(n)}
    return sorted(changed)


def _restart_needed(old: City, new: City) -> list[str]:
    """What changed between two configurations that a swap does not apply."""
    needed = []
    if ({n: m.streams for n, m in old.members.items() if m.streams}
            != {n: m.streams for n, m in new.members.items() if m.streams}):
        needed.append("streams")
    if old.ledger != new.ledger:
        needed.append("ledger")
    if old.store != new.store:  # the stores and ledger are kept across a swap
        needed.append("store")
    if old.hub.pg_port != new.hub.pg_port:
        needed.append("pg_port")
    return needed


class Reloader:
    """Keeps a serving node's configuration current with its city folder.

    Args:
        node: the node serving now (its stores, ledger and streams are kept across reloads).
        build: ``build(node, state)`` makes the protocol application of a node
            (``Node.app`` with the serving command's options and ``config=state``, this
            reloader's :meth:`state`); a ``ZhongshuError`` from it (e.g. a ``ConfigError``:
            a panel, a scenario's callers) refuses the change.
        wire: the PostgreSQL wire endpoint (also settable later as :attr:`wire`).
        grace_s: how long an old query service lives after a swap (default: the hub's
            query time limit plus five seconds).
        report: told each outcome in one line, for the operator's console (it is logged
            besides).
    """

    def __init__(self, node: Node, build: Build, wire: Endpoint | None = None,
                 grace_s: float | None = None,
                 report: Callable[[str], None] | None = None) -> None:
        self.node = self._first = node
        self.root = node.city.root
        self._build = build
        #: the PostgreSQL wire endpoint, pointed at each new query service (None: none)
        self.wire = wire
        self._grace_s = grace_s
        self._report = report or (lambda line: None)
        self._lock = threading.Lock()  # the state's fields
        self._reloading = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._retired: list[tuple[float, Node]] = []
        self.app = Swap(build(node, self.state))
        self._applied = _now()
        self._reloads = 0
        self._took_s = 0.0
        self._refused: dict[str, str] | None = None
        self._restart: list[str] = []
        self._files = digests(self.root)

    # --- what operators see ----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The configuration's state: when the one serving was loaded, how many changes were
        applied (and how long the last took), the last refused change (its error, with file
        and line, and when) if it came after, and what changed that needs a restart."""
        with self._lock:
            out: dict[str, Any] = {"loaded_at": self._applied, "reloads": self._reloads,
                                   "watching": self._thread is not None}
            if self._reloads:
                out["took_s"] = self._took_s
            if self._refused is not None:
                out["refused"] = dict(self._refused)
            if self._restart:
                out["restart_needed"] = list(self._restart)
            return out

    # --- reloading ------------------------------------------------------------------------

    def reload(self) -> bool:
        """Load the city folder again and apply it; False (and the error recorded) when it
        does not load or check — the configuration serving now is kept."""
        t0 = time.monotonic()
        with self._reloading:  # one at a time; health reads the state meanwhile
            old, new = self.node, None
            try:
                city = load_city(self.root)
                new = Node(city, old.stores, old.ledger, monitor=old.monitoring, serve=True)
                new.adopt(old)
                new.catalog.adopt_checks(old.catalog)  # only what changed is checked again
                app = self._build(new, self.state)
                files = digests(self.root)
                # on the ledger before it applies, as every governance change
                new.stores.metadata.record_change(
                    "hub:reload", "config.apply", city.info.name,
                    {"files": {f: h for f, h in files.items() if self._files.get(f) != h},
                     "removed": sorted(set(self._files) - set(files)),
                     "datasets": changed_datasets(old.city, city)})
            except Exception as e:
                # an unforeseen failure refuses the change too: the watch goes on, and only
                # the kind of error is shown (its text is in the log, as for any other)
                said = str(e) if isinstance(e, ZhongshuError) else \
                    f"{type(e).__name__} while loading it (see the hub's log)"
                with self._lock:
                    self._refused = {"error": said, "at": _now()}
                line = f"configuration change refused (the last good one serves on): {said}"
                log.error("%s", line, exc_info=not isinstance(e, ZhongshuError))
                self._report(line)
                if new is not None:
                    if "query" not in new.__dict__:  # its catalog opened the sources
                        for src in new.catalog.sources.values():
                            src.close()
                    new.close_query()
                return False
            self.app.current = app
            if self.wire is not None:
                self.wire.use(new.query, app.state.authn, app.state.metrics)
            self.node = new
            grace = self._grace_s if self._grace_s is not None else (
                old.city.hub.query_timeout_s + 5)
            self._files = files
            with self._lock:
                self._restart = sorted(set(self._restart)
                                       | set(_restart_needed(old.city, city)))
                self._retired.append((time.monotonic() + grace, old))
                self._applied, self._refused = _now(), None
                self._reloads += 1
                self._took_s = round(time.monotonic() - t0, 2)
        line = (f"configuration applied in {self._took_s:.1f} s ({len(city.members)} members, "
                f"{len(new.catalog.datasets)} datasets)")
        if self._restart:
            line += f"; changed but applied only by a restart: {', '.join(self._restart)}"
        log.warning("%s", line)
        self._report(line)
        return True

    def _retire(self, everything: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            due = [n for t, n in self._retired if everything or t <= now]
            self._retired = [(t, n) for t, n in self._retired if n not in due]
        for node in due:
            node.close_query()

    # --- watching -------------------------------------------------------------------------

    def _paths(self) -> list[Path]:
        return [self.root, *(p for p in (self.root / f for f in WATCHED_FOLDERS) if p.is_dir())]

    def _relevant(self, path: str) -> bool:
        p = Path(path)
        if p.parent == self.root:
            return p.name in WATCHED_FILES or p.name in WATCHED_FOLDERS
        return p.parent.parent == self.root and p.parent.name in WATCHED_FOLDERS

    def start(self) -> None:
        """Watch the city folder in a background thread."""
        self._thread = threading.Thread(target=self._watch, name="zhongshu-reload",
                                        daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        import watchfiles

        while not self._stop.is_set():
            paths = self._paths()
            for changes in watchfiles.watch(*paths, recursive=False, debounce=SETTLE_MS,
                                            step=50, stop_event=self._stop,
                                            rust_timeout=1000, yield_on_timeout=True,
                                            raise_interrupt=False):
                self._retire()
                if any(self._relevant(p) for _, p in changes):
                    self.reload()
                    if self._paths() != paths:
                        break  # a watched folder appeared: watch it too

    def close(self) -> None:
        """Stop watching and close the query services of every node built since the first;
        the first node (its owner closes it) still holds the stores, ledger and streams."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._retire(everything=True)
        if self.node is not self._first:
            self.node.close_query()
