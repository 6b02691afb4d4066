"""A serving hub follows its city folder (``zhongshu.reload``): ``zhongshu serve`` in its own
process, changed on disk with the CLI and an editor's writes; the oracle for an answer is the
member's SQLite file read with ``sqlite3``.

How soon a change applies is measured in ``bench/reload.py`` (target: 3 s); here a change
must apply within ``APPLIED_S``, a bound for a loaded CI machine, not the target."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import HubProcess, copy_demo_city, free_port, readable_dir
from zhongshu.demo.tokens import ensure_tokens, read_token
from zhongshu.node import Node

pytestmark = pytest.mark.slow

APPLIED_S = 60.0

PROBE = '''
[[sources]]
name = "probe-db"
kind = "sqlite"
path = "data/traffic-police.sqlite"

[[datasets]]
name = "probe.cameras"
title = "Cameras, read again"
source = "probe-db"
table = "checkpoints"
listed = false

[[datasets.columns]]
name = "camera_id"
type = "VARCHAR"
classification = "public"

[[datasets.columns]]
name = "district"
type = "VARCHAR"
classification = "public"
'''


def cli(root: Path, *args: str) -> str:
    """Run ``zhongshu ARGS --dir ROOT``; its standard output."""
    done = subprocess.run([sys.executable, "-m", "zhongshu.cli", *args, "--dir", str(root)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def served(demo_dir: Path) -> Iterator[tuple[str, Path]]:
    """``zhongshu serve`` on a private copy of the demo city (tokens issued first)."""
    with readable_dir("zs-reload-") as base:
        root = copy_demo_city(demo_dir, base / "city")
        with Node.open(root) as node:
            ensure_tokens(node.catalog, root)
        proc = HubProcess(root, free_port(), "serve")
        try:
            yield proc.url, root
        finally:
            proc.stop()
            print(proc.log_path.read_text(encoding="utf-8", errors="replace")[-3000:])


def query(url: str, token: str, sql: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/query", json={"sql": sql, "purpose": "city-operations"},
                      headers={"Authorization": f"Bearer {token}"}, timeout=30)


def until(what: str, check: Any, within_s: float, detail: Any = None) -> float:
    """Seconds until ``check()`` is true; fails after ``within_s`` (with ``detail()``)."""
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < within_s, \
            f"not within {within_s} s: {what}" + (f" ({detail()})" if detail else "")
        time.sleep(0.05)
    return time.monotonic() - t0


def config_state(url: str, root: Path) -> dict[str, Any]:
    r = httpx.get(f"{url}/v1/health",
                  headers={"Authorization": f"Bearer {read_token(root, 'data-bureau')}"},
                  timeout=10)
    assert r.status_code == 200, r.text
    state: dict[str, Any] = r.json()["config"]
    return state


def test_a_new_member_its_dataset_and_token_answer_without_a_restart(
        served: tuple[str, Path]) -> None:
    url, root = served
    assert config_state(url, root)["watching"] is True
    cli(root, "members", "add", "probe-dept", "--kind", "department")
    with (root / "members" / "probe-dept.toml").open("a", encoding="utf-8") as f:
        f.write(PROBE)
    token = cli(root, "members", "token", "probe-dept").strip().splitlines()[-1]
    with sqlite3.connect(root / "data" / "traffic-police.sqlite") as con:
        want = con.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
    assert want > 0

    took = until("the new member's dataset answers",
                 lambda: query(url, token, "SELECT count(*) AS n FROM probe.cameras"
                               ).status_code == 200, within_s=APPLIED_S,
                 detail=lambda: config_state(url, root))
    rows = query(url, token, "SELECT count(*) AS n FROM probe.cameras").json()["rows"]
    assert rows == [[want]]
    assert config_state(url, root)["reloads"] >= 1
    print(f"applied {took:.2f} s after the token was issued; "
          f"the last reload took {config_state(url, root)['took_s']} s")


def test_a_broken_edit_is_refused_with_file_and_line_and_the_last_good_one_serves(
        served: tuple[str, Path]) -> None:
    url, root = served
    token = read_token(root, "traffic-police")
    sql = "SELECT count(*) AS n FROM traffic.checkpoints"
    before = query(url, token, sql)
    assert before.status_code == 200, before.text
    path = root / "members" / "traffic-police.toml"
    good = path.read_text(encoding="utf-8")
    lines = good.splitlines()
    # an editor's mistake on one line: a column type that is not a type
    at = next(i for i, line in enumerate(lines) if line.strip() == 'type = "DOUBLE"')
    lines[at] = 'type = 42'
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    until("the change is refused", lambda: "refused" in config_state(url, root), within_s=APPLIED_S)
    refused = config_state(url, root)["refused"]
    assert f"members/traffic-police.toml:{at + 1}:" in refused["error"], refused["error"]
    again = query(url, token, sql)
    assert again.status_code == 200 and again.json()["rows"] == before.json()["rows"]

    reloads = config_state(url, root)["reloads"]
    path.write_text(good, encoding="utf-8")
    until("the fixed file is applied", lambda: config_state(url, root)["reloads"] > reloads,
          within_s=APPLIED_S)
    assert "refused" not in config_state(url, root)
    assert query(url, token, sql).json()["rows"] == before.json()["rows"]

