"""The hub itself: the city it serves, its health, Prometheus metrics.

``/v1/health`` tells every member the hub's status and a summary in counts and states (what
the city cockpit's hub panel shows); only members with the ``operator`` role (the data
bureau's staff running the hub) or the ``auditor`` role see the detail — each source's state,
the ledger's signing, checkpoint age, finality and each witness's last outcome, the second
wall, and each ingested stream's state and counts. Reasons are
phrases from closed sets, for everyone: never a path, a host or a secret. ``"degraded"``
means a guarantee is lost: the ledger cannot record or sign, checkpoints cannot become
final (see :meth:`zhongshu.ledger.Ledger.lost`), or query execution is not confined to the
sources (:meth:`zhongshu.query.service.QueryService.second_wall`).
"""

from typing import Annotated, Any

from fastapi import Depends, FastAPI
from fastapi.responses import PlainTextResponse

from zhongshu.policy.identity import Caller
from zhongshu.protocol.models import HealthOut
from zhongshu.protocol.routes import Parts

DETAIL_ROLES = ("operator", "auditor")


def add_routes(app: FastAPI, parts: Parts) -> None:
    """Mount ``/v1/city``, ``/v1/health`` and ``/metrics``."""
    service, errors, ledger = parts.service, parts.errors, parts.ledger

    @app.get("/v1/city", responses=errors, tags=["hub"])
    def city(who: Annotated[Caller, Depends(parts.caller)]) -> dict[str, Any]:
        """The city this hub serves: its name and districts (short name, administrative code,
        Chinese name), so clients can map a department's own codes onto them."""
        info = service.city.info
        return {"name": info.name, "title": info.title, "name_zh": info.name_zh,
                "code": info.code, "districts": [
                    {"name": d.name, "code": d.code, "name_zh": d.name_zh, "title": d.title}
                    for d in service.city.districts]}

    @app.get("/v1/health", response_model=HealthOut, response_model_exclude_none=True,
             responses=errors, tags=["hub"])
    def health(who: Annotated[Caller, Depends(parts.caller)]) -> dict[str, Any]:
        """``ok`` or ``degraded`` (a guarantee is lost: the ledger cannot record and sign —
        data queries then answer ``503 ledger_unavailable`` — or checkpoints cannot become
        final), a summary in counts and states; the detail for operators and auditors."""
        sources = service.health()
        led = ledger.health() if ledger is not None else None
        lost = [] if ledger is None or led is None else ledger.lost(led)
        wall = service.second_wall()
        if not wall["held"]:
            lost.append("second_wall")
        down = sum(s != "ok" for s in sources.values())
        summary = {"sources_up": len(sources) - down, "sources_down": down,
                   "ledger": "none" if led is None else
                   "ok" if "recording" not in lost else "unready",
                   "finality": "none" if led is None else led["finality"],
                   "second_wall": "held" if wall["held"] else "lost", "lost": lost}
        out: dict[str, Any] = {"status": "degraded" if lost else "ok", "summary": summary}
        if any(who.has_role(r) for r in DETAIL_ROLES):
            out["sources"] = sources
            if led is not None:
                out["ledger"] = led
            out["second_wall"] = wall
            if service.remote is not None:
                out["peers"] = service.remote.sync.report()
            if parts.streams is not None:
                out["streams"] = parts.streams()
            if parts.config is not None:
                out["config"] = parts.config()
        return out

    @app.get("/metrics", response_class=PlainTextResponse, tags=["hub"])
    def prometheus() -> str:
        """Prometheus metrics: counts by state, no data, no identities, and no names of
        sources or witnesses unless the operator set ``[hub] metrics_names = true``."""
        return parts.metrics.render(service.sources.statuses(),
                                    ledger.health() if ledger is not None else None)
