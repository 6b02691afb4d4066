"""``zhongshu demo --federated``: the city hub and two district hubs as separate processes,
each with its own folder; the city reads the districts only through the protocol."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.slow
UNION = "SELECT district, count(*) AS n FROM grid.events GROUP BY district ORDER BY 1"


def _pids(folder: Path) -> list[int]:
    """The processes serving ``folder`` (read from /proc: the demo started them)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"serve" in cmd and str(folder).encode() in cmd:
                out.append(int(entry.name))
    return out


class Demo:
    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zhongshu.cli", "demo", "--dir", str(root), "--scale",
             "0.01", "--port", str(port), "--federated", "--no-witness", "--pg-port", "0",
             "--no-watch"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)

    def ask(self, sql: str, **extra: object) -> httpx.Response:
        token = (self.root / "state" / "tokens" / "cockpit-city.token").read_text().strip()
        return httpx.post(f"{self.url}/v1/query", timeout=30,
                          headers={"Authorization": f"Bearer {token}"},
                          json={"sql": sql, "purpose": "city-operations", **extra})

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    port = free_port()
    while any(_busy(port + i) for i in (1, 2)):
        port = free_port()
    d = Demo(tmp_path / "city", port)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert d.proc.poll() is None, "the demo stopped"
            try:
                if d.ask(UNION).status_code == 200:
                    break
            except (httpx.HTTPError, OSError):
                pass
            assert time.monotonic() < deadline, "the federated demo did not answer"
            time.sleep(1)
        yield d
    finally:
        d.stop()


def _busy(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _raw(root: Path, name: str) -> list[tuple[object, ...]]:
    db = root / "districts" / name / "data" / "grid.sqlite"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return con.execute("SELECT * FROM events").fetchall()


def test_the_federated_demo(demo: Demo) -> None:
    raw = {n: _raw(demo.root, n) for n in ("binjiang", "xihu")}
    # the city's roll-up equals the districts' own rows, counted from their files
    r = demo.ask(UNION)
    assert r.json()["rows"] == [[n, len(rows)] for n, rows in sorted(raw.items())]
    assert sorted(u["hub"] for u in r.json()["upstream_receipts"]) == ["hub-binjiang",
                                                                       "hub-xihu"]
    # the phone was never granted to the city hub: not a column there, not in any answer
    r = demo.ask("SELECT * FROM xihu_grid.events")
    assert r.status_code == 200
    assert "reporter_phone" not in [c["name"] for c in r.json()["columns"]]
    assert not any(row[-1].encode() in r.content for row in raw["xihu"])
    # each hub has its own folder: state, ledger, keys
    for n in raw:
        assert (demo.root / "districts" / n / "state" / "federation.key").is_file()
    # SIGKILL one district hub: 503 naming it, quickly; with allow_partial the other's rows
    for pid in _pids(demo.root / "districts" / "binjiang"):
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    t0 = time.monotonic()
    r = demo.ask(UNION)
    took = time.monotonic() - t0
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "peer_unavailable"
    assert "hub-binjiang" in r.json()["error"]["message"]
    assert took <= 1.0, took
    r = demo.ask(UNION, allow_partial=True)
    assert r.json()["rows"] == [["xihu", len(raw["xihu"])]]
    assert [p["hub"] for p in r.json()["partial"]] == ["hub-binjiang"]
    assert json.dumps(r.json()["partial"])  # says why, as JSON the cockpit can show
