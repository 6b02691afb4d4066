"""The last observed state of each source, and the background probe that keeps it.

A source is ``ok`` or ``down`` (with a reason and since when). Queries on a down source are
refused at once (``source_unavailable``) while every other dataset keeps working; the probe
finds a source that came back, re-checks its datasets and hands it back to the query service,
which re-attaches it under a fresh engine before the source counts as ``ok`` again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from zhongshu.catalog.catalog import Catalog
from zhongshu.sources.errors import REASONS

log = logging.getLogger("zhongshu.query")


@dataclass(frozen=True)
class SourceState:
    """One source's last observed state."""

    status: str  # "ok" or "down"
    reason: str = ""
    since: float = 0.0


class SourceHealth:
    """Source name → :class:`SourceState`, as last observed (thread-safe reads)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        now = time.time()
        self._state: dict[str, SourceState] = {}
        for ds in catalog.datasets.values():
            if ds.status == "source_down":
                self._state[ds.source.name] = SourceState("down", ds.reason, now)
        for name in catalog.sources:
            self._state.setdefault(name, SourceState("ok", "", now))
        self._stop = threading.Event()

    def state(self, name: str) -> SourceState:
        """The state of source ``name``."""
        return self._state[name]

    def is_up(self, name: str) -> bool:
        """Whether source ``name`` was last seen answering."""
        return self._state[name].status == "ok"

    def statuses(self) -> dict[str, str]:
        """Source name → ``ok`` or ``down`` (for metrics)."""
        return {n: s.status for n, s in self._state.items()}

    def report(self) -> dict[str, str]:
        """Source name → ``ok`` or ``down: REASON``, sorted by name."""
        return {n: "ok" if s.status == "ok" else f"down: {s.reason}"
                for n, s in sorted(self._state.items())}

    def mark_down(self, name: str, reason: str) -> None:
        """Record that source ``name`` stopped answering (logged once per outage), with a
        reason from the closed set of ``sources.errors.REASONS`` (anything else is recorded
        as ``cannot be read``: a reason is shown in health, and may carry no path or host)."""
        if reason not in REASONS:
            log.error("source %s: reason outside the closed set, recorded as 'cannot be "
                      "read'", name)
            reason = "cannot be read"
        if self._state[name].status != "down":
            log.warning("source %s is down: %s", name, reason)
            self._state[name] = SourceState("down", reason, time.time())

    def mark_up(self, names: Collection[str]) -> None:
        """Record that these sources answer again (once queries can reach them)."""
        now = time.time()
        for name in names:
            self._state[name] = SourceState("ok", "", now)

    def probe(self, attached: Collection[str]) -> list[str]:
        """Probe every source once: mark those failing down, and return those that answer
        again after being down (or were never attached to the engine), their datasets
        re-checked and their pooled native connections closed."""
        recovered = []
        for name, src in self.catalog.sources.items():
            health = src.health()
            if health == "ok":
                if self._state[name].status == "down" or name not in attached:
                    recovered.append(name)
            else:
                self.mark_down(name, health.removeprefix("down: "))
        for name in recovered:
            self.catalog.check(only_source=name)
            self.catalog.sources[name].close()  # pooled native connections died with it
            log.warning("source %s is back; re-attaching under a fresh engine", name)
        return recovered

    def monitor(self, interval_s: float, check: Callable[[], None]) -> None:
        """Run ``check`` every ``interval_s`` seconds on a daemon thread until :meth:`stop`."""
        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    check()
                except Exception:
                    log.exception("source health check failed")

        threading.Thread(target=loop, name="zhongshu-health", daemon=True).start()

    def stop(self) -> None:
        """Stop the monitor."""
        self._stop.set()
