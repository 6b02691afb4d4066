"""The tutorial is a test (issue 21, build item 5): the ```sh blocks of docs/new-city.md run as
written, in order, against a real PostgreSQL and a real browser, and docs/zh/new-city.md holds
the same commands, so neither page can drift from the product.

Oracles that do not share the code under test: the parks table the test writes, counted with
psycopg directly in PostgreSQL; the commands as the pages print them."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import HubProcess, free_port, readable_dir, require_server
from zhongshu.demo.city import ServerSettings

ROOT = Path(__file__).resolve().parent.parent
PAGES = {"en": ROOT / "docs" / "new-city.md", "zh": ROOT / "docs" / "zh" / "new-city.md"}
SERVERS = ServerSettings.from_env()
BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.S | re.M)
SERVE = re.compile(r"^zhongshu serve --dir (\S+) --port \$PORT$")
PLACEHOLDERS = ("PGURL", "PORT")  # set by the reader in the first block, by the test here


def blocks(page: Path) -> list[str]:
    """The page's ```sh blocks, in order."""
    return BLOCK.findall(page.read_text(encoding="utf-8"))


def commands(page: Path) -> list[list[str]]:
    """Each block's lines without comments (whole-line or after whitespace) and blank lines:
    what runs, whatever language the page explains it in."""
    out = []
    for block in blocks(page):
        lines = [re.sub(r"(^|\s+)#.*$", "", line).rstrip() for line in block.splitlines()]
        out.append([line for line in lines if line])
    return out


def test_both_pages_hold_the_same_commands() -> None:
    en, zh = commands(PAGES["en"]), commands(PAGES["zh"])
    assert len(en) >= 8, "the tutorial lost its commands"
    assert en == zh, "docs/new-city.md and docs/zh/new-city.md differ in their commands"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    english, chinese = readme.split("## 中文简介", 1)
    assert "docs/new-city.md" in english and "docs/zh/new-city.md" in chinese


def _script(page: Path) -> tuple[str, str, str]:
    """The page's commands as two shell scripts, before and after its one `zhongshu serve`
    (which the test runs as a background process), and the city folder it serves; the
    placeholders' assignments are left out (the test sets them)."""
    lines = [line for block in blocks(page) for line in block.splitlines()]
    for name in PLACEHOLDERS:
        assert any(line.startswith(f"export {name}=") for line in lines), name
    lines = [line for line in lines
             if not any(line.startswith(f"export {name}=") for name in PLACEHOLDERS)]
    serves = [i for i, line in enumerate(lines) if SERVE.match(line)]
    assert len(serves) == 1, "the tutorial serves once, as `zhongshu serve --dir D --port $PORT`"
    (at,) = serves
    match = SERVE.match(lines[at])
    assert match is not None
    return "\n".join(lines[:at]) + "\n", "\n".join(lines[at + 1:]) + "\n", match.group(1)


DISTRICTS = {"simao": 0.6, "ninger": 0.4}
SPECIES = ("camphor", "pine", "tea", "banyan", "ginkgo")


@pytest.fixture
def parks_db() -> Iterator[str]:
    """A fresh PostgreSQL database holding the parks department's `trees` (dropped after)."""
    require_server("PostgreSQL", 5432)
    name = f"zs_tut_{uuid.uuid4().hex[:8]}"
    rnd = random.Random(21)
    rows = [(i, rnd.choice(SPECIES),
             rnd.choices(list(DISTRICTS), weights=list(DISTRICTS.values()))[0],
             f"20{rnd.randrange(5, 24):02d}-0{rnd.randrange(1, 10)}-1{rnd.randrange(10)}")
            for i in range(1, 351)]
    with psycopg.connect(**SERVERS.pg, dbname="postgres", autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    try:
        with psycopg.connect(**SERVERS.pg, dbname=name, autocommit=True) as c:
            c.execute("CREATE TABLE trees (tree_id integer PRIMARY KEY, species text, "
                      "district text, planted date)")
            with c.cursor() as cur:
                cur.executemany("INSERT INTO trees VALUES (%s, %s, %s, %s)", rows)
        yield name
    finally:
        with psycopg.connect(**SERVERS.pg, dbname="postgres", autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _run(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"a tutorial command failed:\n{res.stdout}\n{res.stderr}"
    assert "Traceback" not in res.stdout + res.stderr
    return res


def _shown_per_district(url: str, token: str) -> list[list[Any]]:
    """Sign in on the cockpit's city page in headless Chromium with ``token`` and read what
    its "trees by area" panel drew, once every panel is drawn."""
    from tests.cockpit.test_city_cockpit import CHROMIUM, _signed_in
    from tests.cockpit.test_cockpit import _require_chromium, _settle

    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = _signed_in(browser, url, token)
            _settle(page)
            states = dict(page.eval_on_selector_all(
                "article.panel", "els => els.map(e => [e.dataset.panel, e.dataset.state])"))
            assert states.get("trees-area") == "ready", states
            assert states.get("population-districts") == "ready", states
            rows: list[list[Any]] = page.evaluate("window.__zs.results['trees-area'].rows")
            return rows
        finally:
            browser.close()


@pytest.mark.slow
@pytest.mark.server
def test_the_tutorial_runs_as_written(parks_db: str, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    before, after, city = _script(PAGES["en"])
    pg = SERVERS.pg
    with psycopg.connect(**pg, dbname=parks_db) as c:
        want = [list(r) for r in c.execute(
            "SELECT district, count(*) FROM trees GROUP BY 1 ORDER BY 1").fetchall()]
    with readable_dir("zs-tutorial-") as base:
        bin_dir = base / "bin"
        bin_dir.mkdir()
        (bin_dir / "zhongshu").write_text(
            f'#!/bin/sh\nexec "{sys.executable}" -m zhongshu.cli "$@"\n')
        (bin_dir / "zhongshu").chmod(0o755)
        work = base / "work"
        work.mkdir()
        work.chmod(0o755)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZHONGSHU_")}
        env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", PORT=str(port),
                   PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH"))
                                              if p),
                   PGURL=f"postgresql://{pg['user']}:pw-tutorial@127.0.0.1:{pg['port']}/"
                         f"{parks_db}")
        started = time.monotonic()
        _run(before, work, env)
        hub = HubProcess(work / city, port)
        try:
            res = _run(after + 'printf %s "$ZHONGSHU_TOKEN" > token.txt\n', work, env)
            commands_s = time.monotonic() - started
            # `zhongshu query` printed each district's count
            for district, n in want:
                assert re.search(rf"{district}\s*│\s*{n}\s*│", res.stdout), res.stdout
            token = (work / "token.txt").read_text().strip()
            shown = _shown_per_district(hub.url, token)
            total_s = time.monotonic() - started
        finally:
            hub.stop()
    assert shown == want
    with capsys.disabled():  # shown without -s too
        print(f"\ntutorial: commands {commands_s:.1f} s; from `zhongshu init` to trees per "
              f"district on the cockpit {total_s:.1f} s")
