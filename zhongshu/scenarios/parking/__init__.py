"""Convenient parking (便捷泊车): one view of every operator's free spaces as plain JSON
(the NGSI-LD entities are the hub's own face now, ``/ngsi-ld/v1/``: the old path here
redirects there), and leave-first-pay-later (a driver's stays by
plate, a daily settlement per operator) — read through the hub as ``app-parking``."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse

from zhongshu.client import Hub
from zhongshu.errors import ZhongshuError
from zhongshu.scenarios import Scenario
from zhongshu.scenarios.parking import settle
from zhongshu.scenarios.parking.model import garages, load_mapping, nearest


def router(hub: Hub, purpose: str, home: Path) -> APIRouter:
    """The scenario's API (mounted at /scenarios/parking)."""
    api = APIRouter()
    operators = load_mapping()

    def refused(e: ZhongshuError) -> JSONResponse:
        # the hub's own refusal, passed on as it is: never a wrong or partial answer
        return JSONResponse({"error": e.to_dict()}, status_code=e.status)

    @api.get("/garages")
    def all_garages() -> Any:
        """Every garage of every operator: key-values OffStreetParking plus operator and
        district."""
        try:
            return garages(hub, purpose, operators)
        except ZhongshuError as e:
            return refused(e)

    @api.get("/ngsi-ld/v1/{rest:path}", status_code=308, response_class=RedirectResponse)
    def moved(rest: str, request: Request) -> RedirectResponse:
        """The NGSI-LD facade that lived here moved to the hub's own NGSI-LD face,
        ``/ngsi-ld/v1/`` (answered under the caller's own grants): 308, the query kept."""
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"/ngsi-ld/v1/{quote(rest)}{query}", status_code=308)

    @api.get("/nearest")
    def find_a_space(lon: Annotated[float, Query(ge=-180, le=180)],
                     lat: Annotated[float, Query(ge=-90, le=90)],
                     arrive_at: Annotated[datetime | None, Query()] = None,
                     max_walk_m: Annotated[float, Query(gt=0, le=10_000)] = 1500,
                     limit: Annotated[int, Query(ge=1, le=100)] = 10) -> Any:
        """Garages near a point, ranked by walking distance among those expected to have
        a free space at arrival (``arrive_at``, ISO 8601; naive = UTC)."""
        if arrive_at is not None and arrive_at.tzinfo is None:
            arrive_at = arrive_at.replace(tzinfo=UTC)
        try:
            return nearest(hub, purpose, operators, lon, lat, arrive_at, max_walk_m, limit)
        except ZhongshuError as e:
            return refused(e)

    def bad(message: str) -> JSONResponse:
        return JSONResponse({"error": {"code": "bad_request", "message": message}},
                            status_code=400)

    @api.get("/sessions")
    def driver_sessions(plate: Annotated[str, Query(min_length=5, max_length=20)]) -> Any:
        """Leave first, pay later: the driver's stays at every operator and what is due,
        found by the plate the driver gives (the answer holds no plate)."""
        try:
            return settle.sessions(hub, purpose, plate)
        except ValueError as e:
            return bad(str(e))
        except ZhongshuError as e:
            return refused(e)

    @api.get("/settlement")
    def daily_settlement(day: Annotated[date, Query()]) -> Any:
        """Per operator, the stays that ended on ``day``, the fees due, and the drivers who
        also parked with the other operator (joined by plate pseudonym)."""
        try:
            return {"day": day.isoformat(), "operators": settle.settlement(hub, purpose, day)}
        except ZhongshuError as e:
            return refused(e)

    return api


scenario = Scenario(name="parking", member="app-parking", purpose="convenient-parking",
                    router=router)
