"""The hub itself: the city it serves, its sources' health, Prometheus metrics."""

from typing import Annotated, Any

from fastapi import Depends, FastAPI
from fastapi.responses import PlainTextResponse

from zhongshu.policy.identity import Caller
from zhongshu.protocol.models import HealthOut
from zhongshu.protocol.routes import Parts


def add_routes(app: FastAPI, parts: Parts) -> None:
    """Mount ``/v1/city``, ``/v1/health`` and ``/metrics``."""
    service, errors = parts.service, parts.errors

    @app.get("/v1/city", responses=errors, tags=["hub"])
    def city(who: Annotated[Caller, Depends(parts.caller)]) -> dict[str, Any]:
        """The city this hub serves: its name and districts (short name, administrative code,
        Chinese name), so clients can map a department's own codes onto them."""
        info = service.city.info
        return {"name": info.name, "title": info.title, "name_zh": info.name_zh,
                "code": info.code, "districts": [
                    {"name": d.name, "code": d.code, "name_zh": d.name_zh, "title": d.title}
                    for d in service.city.districts]}

    @app.get("/v1/health", response_model=HealthOut, responses=errors, tags=["hub"])
    def health(who: Annotated[Caller, Depends(parts.caller)]) -> dict[str, Any]:
        """The hub's sources: ``ok`` or ``down: REASON``; ``degraded`` while the ledger
        cannot record and sign (data queries then answer ``503 ledger_unavailable``)."""
        unready = parts.ledger is not None and parts.ledger.unready() is not None
        return {"status": "degraded" if unready else "ok", "sources": service.health()}

    @app.get("/metrics", response_class=PlainTextResponse, tags=["hub"])
    def prometheus() -> str:
        """Prometheus metrics (counts only; no data, no identities)."""
        return parts.metrics.render(service.sources.statuses())
