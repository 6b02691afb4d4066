"""``/livez`` and ``/readyz``: unauthenticated probes for load balancers and supervisors.

Neither says more than a status: no names, paths, hosts or reasons an outsider could use.
*Live* means the process answers. *Ready* means the hub can answer **and record**: its ledger
(when the city runs one) is open and can sign checkpoints — a hub whose log no longer matches
what it signed, or that cannot sign, is not ready and answers data queries
``503 ledger_unavailable`` (see :meth:`zhongshu.ledger.Ledger.unready`). Sources are left
aside: one department's outage makes only its datasets unavailable, never the hub.
"""

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from zhongshu.protocol.routes import Parts


def add_routes(app: FastAPI, parts: Parts) -> None:
    """Mount ``/livez`` and ``/readyz``."""
    ledger = parts.ledger

    @app.get("/livez", tags=["hub"])
    def livez() -> dict[str, str]:
        """The hub process answers (``200 {"status": "live"}``)."""
        return {"status": "live"}

    @app.get("/readyz", tags=["hub"], responses={503: {"description": "not ready", "content": {
        "application/json": {"schema": {"type": "object", "properties": {
            "status": {"type": "string", "enum": ["unready"]}}}}}}})
    def readyz() -> JSONResponse:
        """``200 {"status": "ready"}`` when the hub can answer and record; ``503
        {"status": "unready"}`` otherwise (the operator's health and log say why)."""
        if ledger is not None and ledger.unready() is not None:
            return JSONResponse({"status": "unready"}, status_code=503)
        return JSONResponse({"status": "ready"})
