"""Shared benchmark helpers: demo cities on each engine, a hub in a subprocess, a fast
loopback HTTP/1.1 client, and medians. Benchmarks print figures; they assert nothing."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zhongshu.demo.city import ServerSettings, build_demo_city  # noqa: E402
from zhongshu.demo.tokens import read_token  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def generator_version() -> str:
    """A hash of the demo generator's code: a city built by another version is rebuilt."""
    import hashlib

    import zhongshu.demo.city as demo_city
    import zhongshu.demo.generate as demo_generate

    return hashlib.sha256(Path(demo_city.__file__).read_bytes()
                          + Path(demo_generate.__file__).read_bytes()).hexdigest()[:16]


def build(workdir: Path, name: str, scale: float, traffic_engine: str,
          servers: ServerSettings) -> Path:
    """A demo city whose traffic police run ``traffic_engine`` (reused if already built)."""
    root = workdir / name
    marker = root / "bench.json"
    want = {"scale": scale, "traffic": traffic_engine, "prefix": servers.prefix,
            "generator": generator_version()}
    if marker.is_file() and json.loads(marker.read_text()) == want:
        return root
    if root.exists():  # built by another version or scale: the demo builds only new folders
        shutil.rmtree(root)
    overrides = {"traffic-police": traffic_engine}
    build_demo_city(root, seed=42, scale=scale, engines="embedded", servers=servers,
                    overrides=overrides)
    marker.write_text(json.dumps(want))
    return root


@contextmanager
def serve(city: Path, extra_env: dict[str, str] | None = None, *args: str,
          start_s: float = 120) -> Iterator[tuple[str, str]]:
    """Run `zhongshu demo` (reusing the city, which also issues tokens; ``args`` are more of
    its options) in a subprocess, without its witness hub (a second process cosigning once a
    second, not what is measured); yield (url, cockpit-city token)."""
    port = free_port()
    env = {**os.environ, **(extra_env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "zhongshu.cli", "demo", "--dir", str(city),
                             "--port", str(port), "--no-witness", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + start_s
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"hub did not start: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", read_token(city, "cockpit-city")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def pct_ms(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] * 1000


class RawClient:
    """A minimal keep-alive HTTP/1.1 client over asyncio streams: cheap enough that the load
    generator does not dominate a 2-core machine."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        assert self.reader and self.writer
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length)
        return status, body

    def close(self) -> None:
        if self.writer:
            self.writer.close()


def post(path: str, host: str, body: bytes, token: str | None = None) -> bytes:
    """Raw bytes of a JSON POST."""
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"{auth}Content-Length: {len(body)}\r\n\r\n").encode() + body


class SyncRawClient:
    """A blocking keep-alive HTTP/1.1 client on one socket: measures the hub, not a client
    library (httpx alone adds about 0.5 ms per request on this kind of machine)."""

    def __init__(self, url: str, token: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port, self.token = host, int(port), token
        self._connect()

    def _connect(self) -> None:
        self.sock = socket.create_connection((self.host, self.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def post_json(self, path: str, payload: dict[str, object]) -> tuple[int, bytes]:
        raw = post(path, self.host, json.dumps(payload).encode(), self.token)
        for attempt in (1, 2):
            self.sock.sendall(raw)
            while b"\r\n\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
            if b"\r\n\r\n" in self.buf:
                break
            if attempt == 2:
                raise ConnectionError("the hub closed the connection")
            self.sock.close()  # idle keep-alive connection closed by the server: reconnect
            self._connect()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        while len(rest) < length:
            chunk = self.sock.recv(max(65536, length - len(rest)))
            if not chunk:
                raise ConnectionError("the hub closed the connection mid-answer")
            rest += chunk
        self.buf = rest[length:]
        return int(head[9:12]), rest[:length]

    def close(self) -> None:
        self.sock.close()


@contextmanager
def scratch_store(server: str) -> Iterator[str]:
    """A new database on ``server`` (a ``postgresql://`` URL) with the hub's schema
    (``zhongshu db upgrade``), dropped afterwards."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    name = f"zs_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    try:
        subprocess.run([sys.executable, "-m", "zhongshu.cli", "db", "upgrade", "--store", url],
                       check=True, capture_output=True)
        yield url
    finally:
        with psycopg.connect(server, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
