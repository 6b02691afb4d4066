"""`zhongshu demo`'s witness: a second hub, in its own process and folder, that cosigns the demo
hub's checkpoints (c2sp.org/tlog-witness), so checkpoints become final — and health says
``degraded`` with finality lost when it is stopped or refuses.

The witness hub is a city with no departments (``zhongshu init``) under
``<demo>/witness-hub/``, declaring the demo's log in ``[ledger] witnessing``; the demo's
``city.toml`` names it in ``[ledger] witnesses``. Both keys are the hubs' own (created where
each hub keeps them, as on first start), so nothing is shared but public keys.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import httpx
import tomli_w

from zhongshu.config import load_city
from zhongshu.ledger import Ledger, note
from zhongshu.ledger.log import origin_of
from zhongshu.template import scaffold

log = logging.getLogger("zhongshu.demo")
FOLDER = "witness-hub"
NAME = "witness"  # the witness hub's city name; its origin is hub.witness


def _die_with_parent() -> None:
    """In the child: SIGTERM when the demo's process ends, however it ends (PR_SET_PDEATHSIG)."""
    import ctypes
    import signal

    ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def witness_port(hub_port: int) -> int:
    """The witness hub's port: the hub's + 9 when free, else any free one."""
    if _port_free(hub_port + 9):
        return hub_port + 9
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(city_dir: Path, port: int) -> Path:
    """Create (or update) the witness hub's folder and declare it as the demo's witness at
    ``port``; returns the witness hub's folder. Idempotent: run at every demo start."""
    city = load_city(city_dir)
    origin = origin_of(city)
    log_key = Ledger.city_log_key(city)
    folder = city_dir / FOLDER
    if not (folder / "city.toml").exists():
        scaffold(folder, NAME)
    wdoc = tomllib.loads((folder / "city.toml").read_text(encoding="utf-8"))
    w_origin = wdoc.get("hub", {}).get("origin") or f"zhongshu/{NAME}"
    wdoc.setdefault("ledger", {})["witnessing"] = [{"origin": origin,
                                                    "key": log_key.vkey}]
    (folder / "city.toml").write_text(tomli_w.dumps(wdoc), encoding="utf-8")
    state = folder / "state"
    state.mkdir(mode=0o700, exist_ok=True)
    w_key = note.Signer.load_or_create(state / "witness.key", f"{w_origin}/witness",
                                       note.COSIGNATURE_V1)
    doc = tomllib.loads((city_dir / "city.toml").read_text(encoding="utf-8"))
    ledger = doc.setdefault("ledger", {})
    others = [w for w in ledger.get("witnesses", []) if w.get("name") != w_key.name]
    ledger["witnesses"] = [*others, {"name": w_key.name,
                                     "url": f"http://127.0.0.1:{port}/v1/ledger/witness",
                                     "key": w_key.verifier.vkey}]
    (city_dir / "city.toml").write_text(tomli_w.dumps(doc), encoding="utf-8")
    return folder


class WitnessHub:
    """The witness hub's process (``zhongshu serve`` on its folder), its output in
    ``<folder>/serve.log``."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.log = open(folder / "serve.log", "ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZHONGSHU_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zhongshu.cli", "serve", "--dir", str(folder), "--port",
             str(port)], stdout=self.log, stderr=self.log, env=env, start_new_session=True,
            preexec_fn=_die_with_parent)
        # not waited for: the demo's hub asks it to cosign once it listens (a witness that
        # cannot be reached only delays finality), and both start at once
        threading.Thread(target=self._watch, daemon=True, name="witness-hub-start").start()

    def _watch(self) -> None:
        deadline = time.monotonic() + 180
        while self.proc.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz",
                             timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        log.warning("the demo's witness hub did not start; see %s (finality stays lost)",
                    self.folder / "serve.log")

    def stop(self) -> None:
        """Stop the witness hub (SIGTERM, then SIGKILL after 10 s)."""
        stop_child(self.proc)
        self.log.close()


def stop_child(proc: subprocess.Popen[bytes]) -> None:
    """Stop a hub this command started: SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
