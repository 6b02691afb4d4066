"""`zhongshu demo` runs a witness hub: checkpoints become final, and when the witness stops,
health says degraded with finality lost (a second, real hub process)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import HubProcess, copy_demo_city, free_port
from zhongshu.demo.tokens import read_token

pytestmark = pytest.mark.slow
P = "city-operations"


def _health(url: str, token: str) -> dict:  # type: ignore[type-arg]
    r = httpx.get(f"{url}/v1/health", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _processes(part: str) -> list[int]:
    """Process ids whose command line (NUL-separated) holds ``part``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and part in (proc / "cmdline").read_text():
                found.append(int(proc.name))
        except OSError:
            pass
    return found


def _until(what: str, check, timeout_s: float = 30) -> dict:  # type: ignore[no-untyped-def,type-arg]
    deadline = time.monotonic() + timeout_s
    while True:
        body = check()
        if body is not None:
            return body  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"{what} not seen within {timeout_s:g} s"
        time.sleep(0.5)


def test_the_demo_witness_makes_checkpoints_final_and_its_loss_is_seen(
        demo_dir: Path, city_tmp: Path) -> None:
    root = copy_demo_city(demo_dir, city_tmp / "demo")
    hub = HubProcess(root, free_port(), "demo")
    try:
        ops, cockpit = read_token(root, "data-bureau"), read_token(root, "cockpit-city")

        def query() -> None:
            r = httpx.post(f"{hub.url}/v1/query", headers={"Authorization": f"Bearer {cockpit}"},
                           json={"sql": "SELECT count(*) FROM civil.districts", "purpose": P},
                           timeout=30)
            assert r.status_code == 200, r.text

        def final() -> dict | None:  # type: ignore[type-arg]
            query()
            body = _health(hub.url, ops)
            return body if body["summary"]["finality"] == "final" else None

        body = _until("a cosigned checkpoint", final, 120)  # the witness starts meanwhile
        assert body["status"] == "ok"
        (name, state), = body["ledger"]["witnesses"].items()
        assert state == "cosigned" and body["ledger"]["cosigned"] >= 1
        # the witness is another hub, with its own folder and keys: its ledger key is not ours
        witness_toml = (root / "witness-hub" / "city.toml").read_text()
        assert "witnessing" in witness_toml
        pid, = _processes(f"--dir\0{root / 'witness-hub'}\0")
        os.kill(pid, signal.SIGKILL)

        def lost() -> dict | None:  # type: ignore[type-arg]
            query()  # the log grows: a new checkpoint the witness cannot cosign
            body = _health(hub.url, ops)
            return body if body["status"] == "degraded" else None

        body = _until("finality lost", lost, 60)
        assert body["summary"]["finality"] == "lost" and "finality" in body["summary"]["lost"]
        assert body["ledger"]["witnesses"][name] != "cosigned"
        # the answers keep coming: a witness delays finality, never the log
        query()
    finally:
        hub.stop()


def test_the_witness_ends_with_the_demo(demo_dir: Path, city_tmp: Path) -> None:
    """However the demo's process ends (here SIGKILL), its witness hub does not outlive it."""
    root = copy_demo_city(demo_dir, city_tmp / "demo")
    hub = HubProcess(root, free_port(), "demo")
    marker = f"--dir\0{root / 'witness-hub'}\0"
    try:
        _until("the witness started", lambda: {} if len(_processes(marker)) == 1 else None, 30)
    finally:
        hub.kill()  # whatever was seen: a demo left running would disturb the next tests
    _until("the witness gone", lambda: {} if not _processes(marker) else None, 15)
