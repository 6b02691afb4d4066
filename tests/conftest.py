"""Shared fixtures: demo cities built by the demo generator, real servers, a running hub.

Tests that need PostgreSQL or MariaDB skip on a laptop without them, but under ``CI=true`` a
missing server fails the run instead (``.ci/run`` starts them).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from zhongshu.config import City, load_city
from zhongshu.demo.city import ServerSettings, build_demo_city, drop_real_databases
from zhongshu.demo.tokens import ensure_tokens, read_token
from zhongshu.node import Node
from zhongshu.query.service import QueryService

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SEED = 7
SCALE = 0.01


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on ``host:port``."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def require_server(name: str, port: int) -> None:
    """Skip (or, under CI, fail) when the server is not reachable."""
    if port_open(port):
        return
    if CI:
        pytest.fail(f"{name} is not running on 127.0.0.1:{port}; under CI=true server tests "
                    "must run (.ci/run starts it)")
    pytest.skip(f"{name} not running on 127.0.0.1:{port}")


def require_tool(tool: Path, what: str, install: str) -> None:
    """Skip (or, under CI, fail) when ``tool`` is not an executable here; ``what`` needs it,
    ``install`` says how to get it (what ``.ci/run`` does)."""
    if os.access(tool, os.X_OK):
        return
    if CI:
        pytest.fail(f"{tool} is missing; under CI=true {what} must run ({install})")
    pytest.skip(f"{tool} not installed ({install})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def readable_dir(prefix: str) -> Iterator[Path]:
    """A temporary folder the hub's unprivileged DuckDB workers can traverse (pytest's own
    temporary folders are 0700, which would make every source unreadable to them)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


class HubProcess:
    """``zhongshu serve`` (or another command that serves, e.g. ``demo --live``) in its own
    process, on a city folder and a port; ready once it answers."""

    def __init__(self, root: Path, port: int, *command: str,
                 env: dict[str, str] | None = None) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = root / f"serve-{port}.log"
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zhongshu.cli", *(command or ("serve",)), "--dir", str(root),
             "--port", str(port)], stdout=self.log, stderr=self.log,
            env={**os.environ, **(env or {})})
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{self.url}/v1/ledger/key", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()  # and its log closed: no file left open behind a failed start
                raise RuntimeError(f"hub did not start: {self.log_path.read_text()}")
            time.sleep(0.1)
        if (command or ("serve",))[0] == "demo":
            self._wait_for_the_story(deadline + 60)

    def _wait_for_the_story(self, deadline: float) -> None:
        """``zhongshu demo`` publishes the scenarios' derived data once ready (its first
        acts, on the ledger): a test sees the hub after them, its ledger quiet."""
        from zhongshu.demo.story import DONE

        while DONE not in self.log_path.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"the demo's first acts did not end: "
                                   f"{self.log_path.read_text()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def stop(self) -> None:
        """SIGTERM, as an operator stops it."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
        self.log.close()


def copy_demo_city(demo_dir: Path, root: Path, append: dict[str, str] | None = None
                   ) -> Path:
    """A private copy of the demo city (without its state and its log key's pin) at ``root``;
    ``append`` adds text to members' files (member name → TOML), e.g. a stream declaration."""
    shutil.copytree(demo_dir, root, ignore=shutil.ignore_patterns("state", "ledger.pin"))
    for member, text in (append or {}).items():
        with (root / "members" / f"{member}.toml").open("a", encoding="utf-8") as f:
            f.write(text)
    return root


@contextmanager
def demo_hub(source: Path, *options: str) -> Iterator[tuple[str, Path]]:
    """``zhongshu demo [options]`` (which reuses the city and issues its tokens) serving a
    private copy of the demo city at ``source``; yields its URL and folder."""
    with readable_dir("zs-demo-hub-") as base:
        root = copy_demo_city(source, base / "city")
        proc = HubProcess(root, free_port(), "demo", *options)
        try:
            yield proc.url, root
        finally:
            proc.stop()


@pytest.fixture
def city_tmp() -> Iterator[Path]:
    """Per-test folder for cities the hub serves."""
    with readable_dir("zs-city-") as root:
        yield root


@pytest.fixture(scope="session")
def demo_dir() -> Iterator[Path]:
    """The embedded demo city (SQLite, Parquet, CSV files), built once per run."""
    with readable_dir("zs-demo-") as root:
        yield build_demo_city(root / "city", seed=SEED, scale=SCALE)


@pytest.fixture(scope="session")
def demo_city(demo_dir: Path) -> City:
    return load_city(demo_dir)


@pytest.fixture(scope="session")
def node(demo_city: City) -> Iterator[Node]:
    """The demo city's hub parts (``zhongshu.node.Node``), shared by the session."""
    with Node.open(demo_city, serve=True, monitor=False) as n:
        yield n


@pytest.fixture(scope="session")
def service(node: Node) -> QueryService:
    return node.query


@pytest.fixture(scope="session")
def real_servers() -> Iterator[ServerSettings]:
    """Server settings with a database prefix unique to this run; databases dropped after."""
    require_server("PostgreSQL", 5432)
    require_server("MariaDB", 3306)
    servers = ServerSettings.from_env(prefix=f"zs_t{uuid.uuid4().hex[:6]}_")
    try:
        yield servers
    finally:
        drop_real_databases(servers)


@pytest.fixture(scope="session")
def real_dir(real_servers: ServerSettings) -> Iterator[Path]:
    """The demo city with PostgreSQL and MariaDB members (``--engines real``)."""
    with readable_dir("zs-real-") as root:
        yield build_demo_city(root / "city", seed=SEED, scale=SCALE, engines="real",
                              servers=real_servers)


@pytest.fixture(scope="session")
def real_service(real_dir: Path) -> Iterator[QueryService]:
    with Node.open(real_dir, serve=True, monitor=False) as n:
        yield n.query


class RunningHub:
    """A hub (protocol and cockpit; with ``scenarios``, the scenarios too, each member given
    a token first — exactly as `zhongshu serve` builds it) served by uvicorn on a loopback
    port, in a thread of the test process."""

    def __init__(self, node: Node, city_dir: Path, scenarios: bool = False) -> None:
        import uvicorn

        self.node = node
        self.service = node.query
        self.city_dir = city_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if scenarios:
            ensure_tokens(self.service.catalog, city_dir)
        app = node.app(cockpit=True, scenarios=self.url if scenarios else None, url=self.url)
        self.app = app
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("hub did not start")
            time.sleep(0.02)

    def token(self, member: str) -> str:
        ensure_tokens(self.service.catalog, self.city_dir)
        return read_token(self.city_dir, member)

    def wait_checkpoint(self, size: int | None = None, timeout_s: float = 30) -> int:
        """Wait until the hub's latest signed checkpoint covers at least ``size`` entries
        (default: every entry durable now) and return its size.

        The publisher thread signs a checkpoint about once a second, at a moment no test can
        predict, and usage reports and proofs are read through the latest one: a test waits
        for this condition rather than sleeping and hoping one was signed.

        Raises:
            AssertionError: no such checkpoint within ``timeout_s``.
        """
        assert self.node.ledger is not None
        want = self.node.ledger.size if size is None else size
        deadline = time.monotonic() + timeout_s
        while True:
            r = httpx.get(f"{self.url}/v1/ledger/checkpoint", params={"format": "json"},
                          timeout=10)
            if r.status_code == 200 and (got := int(r.json()["size"])) >= want:
                return got
            assert time.monotonic() < deadline, \
                f"no checkpoint of {want} entries within {timeout_s} s: {r.text[:200]}"
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="session")
def hub(node: Node, demo_dir: Path) -> Iterator[RunningHub]:
    running = RunningHub(node, demo_dir)
    yield running
    running.stop()


@pytest.fixture
def own_hub_factory(demo_dir: Path, city_tmp: Path) -> Iterator[Any]:
    """Start hubs on private copies of the demo city (for tests that change grants, members
    or keys); extra member files may be added (or replace the demo's) first, and the
    scenarios served too."""
    started: list[tuple[RunningHub, Node]] = []

    def start(extra_members: dict[str, str] | None = None, scenarios: bool = False
              ) -> RunningHub:
        root = city_tmp / f"city{len(started)}"
        shutil.copytree(demo_dir, root, ignore=shutil.ignore_patterns("state", "ledger.pin"))
        for name, text in (extra_members or {}).items():
            (root / "members" / f"{name}.toml").write_text(text)
        node = Node.open(root, serve=True, monitor=False)
        running = RunningHub(node, root, scenarios=scenarios)
        started.append((running, node))
        return running

    yield start
    for running, node in started:
        running.stop()
        node.close()


@pytest.fixture
def own_hub(own_hub_factory: Any) -> RunningHub:
    """A hub on a private copy of the demo city."""
    return own_hub_factory()
