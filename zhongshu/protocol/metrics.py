"""Prometheus metrics of the hub, rendered in the text exposition format.

``/metrics`` is public, so by default it names nothing a caller could not see in the
catalog: sources and witnesses are counted by state, routes are labelled by their template
(scenario routes by their prefix ``/scenarios/<name>``), queries by outcome code and
execution path. The operator may ask for per-source and per-witness series
(``[hub] metrics_names = true``). Ledger series: size, the newest checkpoint's size and
cosignatures, seconds since the log was last shown covered by a checkpoint, finality, and the
times the hub refused to sign.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Counters and a latency histogram; cheap enough for every request."""

    def __init__(self, names: bool = False) -> None:
        self.names = names  # label by source and witness name ([hub] metrics_names)
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.queries: Counter[tuple[str, str]] = Counter()
        self.unauthenticated = 0
        self.wire_events: Counter[str] = Counter()
        self._buckets = [0] * len(_BUCKETS)
        self._sum = 0.0
        self._count = 0

    def request(self, route: str, status: int) -> None:
        """Count one HTTP answer."""
        with self._lock:
            self.requests[(route, status)] += 1
            if status == 401:
                self.unauthenticated += 1

    def wire(self, event: str) -> None:
        """Count one event of the PostgreSQL wire endpoint: ``login``, ``login_refused``
        (wrong token, no TLS off loopback, a member that must sign), ``catalog`` (a query
        answered from the emulated catalog: counted, not recorded)."""
        with self._lock:
            self.wire_events[event] += 1
            if event == "login_refused":
                self.unauthenticated += 1

    def query(self, outcome: str, path: str, seconds: float) -> None:
        """Count one query by outcome (``ok`` or an error code) and path (its kind —
        ``native``, ``duckdb``… — without the source's name unless :attr:`names`), with its
        latency."""
        if not self.names:
            path = path.split(":", 1)[0]
        with self._lock:
            self.queries[(outcome, path)] += 1
            self._sum += seconds
            self._count += 1
            for i, b in enumerate(_BUCKETS):
                if seconds <= b:
                    self._buckets[i] += 1
                    break

    def render(self, sources: dict[str, str], ledger: dict[str, Any] | None = None) -> str:
        """The exposition text: ``sources`` (name → ``ok`` or ``down``), ``ledger`` (a
        :meth:`zhongshu.ledger.Ledger.health` report, None without a ledger); with
        :attr:`names`, series by source and witness name besides the counts by state."""
        names = self.names
        out = ["# HELP zhongshu_requests_total HTTP answers by route and status.",
               "# TYPE zhongshu_requests_total counter"]
        with self._lock:
            for (route, status), n in sorted(self.requests.items()):
                out.append(f'zhongshu_requests_total{{route="{route}",status="{status}"}} {n}')
            out += ["# HELP zhongshu_unauthenticated_total Requests without a valid identity.",
                    "# TYPE zhongshu_unauthenticated_total counter",
                    f"zhongshu_unauthenticated_total {self.unauthenticated}",
                    "# HELP zhongshu_queries_total Queries by outcome and execution path.",
                    "# TYPE zhongshu_queries_total counter"]
            for (outcome, path), n in sorted(self.queries.items()):
                out.append(f'zhongshu_queries_total{{outcome="{outcome}",path="{path}"}} {n}')
            out += ["# HELP zhongshu_wire_events_total PostgreSQL wire endpoint: logins, "
                    "refused logins, catalog queries.",
                    "# TYPE zhongshu_wire_events_total counter"]
            for event, n in sorted(self.wire_events.items()):
                out.append(f'zhongshu_wire_events_total{{event="{event}"}} {n}')
            out += ["# HELP zhongshu_query_seconds Time to answer a query.",
                    "# TYPE zhongshu_query_seconds histogram"]
            acc = 0
            for b, n in zip(_BUCKETS, self._buckets, strict=True):
                acc += n
                out.append(f'zhongshu_query_seconds_bucket{{le="{b}"}} {acc}')
            out.append(f'zhongshu_query_seconds_bucket{{le="+Inf"}} {self._count}')
            out.append(f"zhongshu_query_seconds_sum {self._sum:.6f}")
            out.append(f"zhongshu_query_seconds_count {self._count}")
        out += _states("sources", "Sources by state (ok, down).", sources, ("ok", "down"))
        if names:
            out += ["# HELP zhongshu_source_up Whether a source answers (1) or is down (0).",
                    "# TYPE zhongshu_source_up gauge"]
            for name, state in sorted(sources.items()):
                out.append(f'zhongshu_source_up{{source="{name}"}} {int(state == "ok")}')
        if ledger is not None:
            out += _ledger(ledger, names)
        return "\n".join(out) + "\n"


def _gauge(name: str, help_: str, value: float, kind: str = "gauge") -> list[str]:
    return [f"# HELP {name} {help_}", f"# TYPE {name} {kind}", f"{name} {value}"]


def _states(what: str, help_: str, states: dict[str, str], known: tuple[str, ...]
            ) -> list[str]:
    counts = Counter(states.values())
    out = [f"# HELP zhongshu_{what} {help_}", f"# TYPE zhongshu_{what} gauge"]
    for state in sorted(set(known) | set(counts)):
        out.append(f'zhongshu_{what}{{state="{state}"}} {counts.get(state, 0)}')
    return out


def _ledger(h: dict[str, Any], names: bool) -> list[str]:
    age = h["checkpoint_age_s"]
    out = _gauge("zhongshu_ledger_size", "Entries in the ledger.", h["size"])
    out += _gauge("zhongshu_ledger_ready", "Whether the ledger can record and sign (1).",
                  int(h["recording"] == "ok" and h["signing"] == "ok"))
    out += _gauge("zhongshu_ledger_checkpoint_size", "Entries in the newest checkpoint.",
                  h["checkpoint_size"])
    out += _gauge("zhongshu_ledger_checkpoint_age_seconds", "Seconds since the log was last "
                  "shown covered by a signed checkpoint (-1: not yet).",
                  -1 if age is None else age)
    out += _gauge("zhongshu_ledger_cosigned", "Witnesses whose cosignature the newest "
                  "checkpoint carries.", h["cosigned"])
    out += _gauge("zhongshu_ledger_quorum", "Cosignatures a checkpoint needs to be final.",
                  h["quorum"])
    out += _gauge("zhongshu_ledger_final", "Whether the newest checkpoint is final (1), or "
                  "no witness is configured (1).", int(h["finality"] in ("final", "none")))
    out += _gauge("zhongshu_ledger_refused_to_sign_total", "Times the hub refused or failed "
                  "to sign a checkpoint.", h["refused_to_sign"], "counter")
    witnesses: dict[str, str] = h["witnesses"]
    out += _states("ledger_witnesses", "Witnesses by their last outcome.", witnesses,
                   ("cosigned", "refused", "unreachable"))
    if names:
        out += ["# HELP zhongshu_ledger_witness_up Whether a witness cosigned last time (1).",
                "# TYPE zhongshu_ledger_witness_up gauge"]
        for name, state in sorted(witnesses.items()):
            out.append(f'zhongshu_ledger_witness_up{{witness="{name}"}} '
                       f'{int(state == "cosigned")}')
    return out


def route_label(scope: dict[str, Any]) -> str:
    """The route an answer is counted under: the matched route's template
    (``/v1/datasets/{name}``), a scenario's prefix (``/scenarios/parking``) for every route of
    that scenario, ``unmatched`` for anything else — never the path as sent, so callers can
    neither name things in the metrics nor grow their series without bound."""
    path = getattr(scope.get("route"), "path", None)
    if not isinstance(path, str):
        return "unmatched"
    if path.startswith("/scenarios/"):
        return "/scenarios/" + path.split("/")[2]
    return path


class CountRequests:
    """Pure ASGI middleware counting answers by route and status (no per-request task, unlike
    Starlette's BaseHTTPMiddleware, which costs a large share of a point lookup)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def counting_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.metrics.request(route_label(scope), status)
