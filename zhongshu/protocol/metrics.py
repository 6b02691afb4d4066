"""Prometheus metrics of the hub, rendered in the text exposition format."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Counters and a latency histogram; cheap enough for every request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.queries: Counter[tuple[str, str]] = Counter()
        self.unauthenticated = 0
        self._buckets = [0] * len(_BUCKETS)
        self._sum = 0.0
        self._count = 0

    def request(self, route: str, status: int) -> None:
        """Count one HTTP answer."""
        with self._lock:
            self.requests[(route, status)] += 1
            if status == 401:
                self.unauthenticated += 1

    def query(self, outcome: str, path: str, seconds: float) -> None:
        """Count one query by outcome (``ok`` or an error code) and path, with its latency."""
        with self._lock:
            self.queries[(outcome, path)] += 1
            self._sum += seconds
            self._count += 1
            for i, b in enumerate(_BUCKETS):
                if seconds <= b:
                    self._buckets[i] += 1
                    break

    def render(self, sources: dict[str, str]) -> str:
        """The exposition text."""
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
            out += ["# HELP zhongshu_query_seconds Time to answer a query.",
                    "# TYPE zhongshu_query_seconds histogram"]
            acc = 0
            for b, n in zip(_BUCKETS, self._buckets, strict=True):
                acc += n
                out.append(f'zhongshu_query_seconds_bucket{{le="{b}"}} {acc}')
            out.append(f'zhongshu_query_seconds_bucket{{le="+Inf"}} {self._count}')
            out.append(f"zhongshu_query_seconds_sum {self._sum:.6f}")
            out.append(f"zhongshu_query_seconds_count {self._count}")
        out += ["# HELP zhongshu_source_up Whether a source answers (1) or is down (0).",
                "# TYPE zhongshu_source_up gauge"]
        for name, state in sorted(sources.items()):
            out.append(f'zhongshu_source_up{{source="{name}"}} {1 if state == "ok" else 0}')
        return "\n".join(out) + "\n"


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
            route = scope.get("route")
            self.metrics.request(getattr(route, "path", "unmatched"), status)
