"""The demo day's first acts: what the city's members would have done before a visitor opens
the cockpit — the parks department publishes its latest tree survey's densities, the traffic
police ask for signal plans from the recorded day — so that no showroom panel waits for
someone to press a button. Each act is a call to a scenario's service by the member its
member file admits, through the protocol like any other (and on the ledger)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from zhongshu.client import Hub
from zhongshu.demo.tokens import read_token
from zhongshu.errors import ZhongshuError

DONE = "The demo's first acts are done"
"""The line that ends them on the console (tests wait for it before reading the ledger)."""
READY_S = 120.0  # a first start on a loaded machine: the hub's workers take a while


def _hub(url: str, root: Path, member: str) -> Hub:
    return Hub(url, read_token(root, member), timeout=120)


def _latest_survey(url: str, root: Path) -> str | None:
    with _hub(url, root, "parks") as parks:
        rows = parks.get("/scenarios/trees/surveys").json()
    return max((s["survey"] for s in rows), default=None)


def _publish(url: str, root: Path, member: str, path: str, **params: str) -> dict[str, Any]:
    """POST a scenario's publishing service as ``member`` (the query string its only input)."""
    with _hub(url, root, member) as hub:
        body: dict[str, Any] = hub.post(f"{path}?{urlencode(params)}", {}).json()
    return body


def acts(url: str, root: Path) -> list[tuple[bool, str]]:
    """Run the demo day's first acts against the hub at ``url`` serving the demo city at
    ``root``; return, per act, whether it published and what (or why not)."""
    lines: list[tuple[bool, str]] = []
    try:
        survey = _latest_survey(url, root)
        if survey is None:
            lines.append((False, "trees.density: no tree survey to publish"))
        else:
            got = _publish(url, root, "parks", "/scenarios/trees/publish", survey=survey)
            lines.append((True, f"trees.density: survey {survey}, {got['districts']} "
                                 "districts (by the trees scenario, for the parks department)"))
    except (httpx.HTTPError, ZhongshuError, ValueError) as e:
        lines.append((False, f"trees.density not published: {e}"))
    try:
        got = _publish(url, root, "traffic-police", "/scenarios/traffic-signals/recommend",
                       **{"from": "recorded"})
        lines.append((True, f"traffic_signals.recommendations: {got['intersections']} "
                            "intersections from the recorded day's busiest hour (ending "
                            f"{got['window_end']}), for the traffic police"))
    except (httpx.HTTPError, ZhongshuError, ValueError) as e:
        lines.append((False, f"traffic_signals.recommendations not published: {e}"))
    return lines


def _ready(url: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


class Story:
    """Runs :func:`acts` once, in a thread, as soon as the hub at ``url`` is ready."""

    def __init__(self, url: str, root: Path, report: Callable[[str], None]) -> None:
        self.url, self.root, self.report = url, root, report
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-story", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            if not _ready(self.url, time.monotonic() + READY_S):
                self.report(f"The demo's first acts did not run: the hub was not ready within "
                            f"{READY_S:.0f} s")
                return
            told = acts(self.url, self.root)
            for published, line in told:
                self.report(f"Published {line}" if published else line)
            self.report(f"{DONE} ({sum(p for p, _ in told)} of {len(told)} published)")
        finally:
            self.done.set()
