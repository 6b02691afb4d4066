"""The digital cockpit (数字驾驶舱): pages served by the hub at ``/cockpit/``.

Everything the pages show comes through the hub protocol under the viewer's own session
(``POST /v1/session``, then ``/v1/query`` and ``/v1/subscribe``), so a district cockpit
cannot show another district's rows: the hub never sends them. What is served here holds
no data: the page itself, ECharts, the city's polygons, and the declared panels bound to a
page's area (SQL text, run by the page as the viewer).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from zhongshu.cockpit.panels import LEVELS, Check, Level, load_panels, served
from zhongshu.config import City
from zhongshu.errors import NotFound

STATIC = Path(__file__).with_name("static")
# ECharts sets inline styles on its canvases; nothing else is inline, nothing is remote
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'")


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "a bad parameter: `{\"error\": {\"code\", \"message\"}}`"},
    404: {"description": "no such area: `{\"error\": {\"code\": \"not_found\", …}}`"}}


class _Areas:
    """The city's districts and streets (names, codes, Chinese and English labels, parents)
    from ``city.toml``, and their polygons from ``geo/*.geojson`` (a street drawn there but
    not declared is taken from its polygon's properties)."""

    def __init__(self, city: City) -> None:
        self.geo: dict[str, Any] = {}
        for level in ("districts", "streets"):
            path = city.root / "geo" / f"{level}.geojson"
            self.geo[level] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() \
                else {"type": "FeatureCollection", "features": []}
        self.districts = {d.name: {"name": d.name, "code": d.code, "name_zh": d.name_zh,
                                   "title": d.title or d.name} for d in city.districts}
        self.streets: dict[str, dict[str, str]] = {
            s.name: {"name": s.name, "district": s.district, "code": s.code,
                     "name_zh": s.name_zh, "title": s.title or s.name} for s in city.streets}
        for f in self.geo["streets"]["features"]:
            props = f.get("properties", {})
            if "street" in props and props["street"] not in self.streets:
                self.streets[props["street"]] = {
                    "name": props["street"], "district": props.get("district", ""),
                    "code": str(props.get("code", "")), "name_zh": props.get("name_zh", ""),
                    "title": props.get("name", "")}

    def check(self, level: Level, area: str | None) -> None:
        if level == "city":
            return
        known = self.districts if level == "district" else self.streets
        if area not in known:
            raise NotFound(f"no {level} `{area}` in this city")


def mount(app: FastAPI, city: City, check: Check | None = None,
          datasets: Callable[[], Collection[str]] | None = None) -> None:
    """Serve the cockpit for ``city`` on ``app`` under ``/cockpit/``.

    Args:
        check: run over each panel's SQL when the panels load (the hub passes the firewall's
            check as a viewer of the panel's datasets: ``policy.owners.panel_checker``).
        datasets: the names of the datasets the hub serves now (default: the city's); a
            panel reading one it does not is not served.

    Raises:
        ConfigError: a panel that does not validate or that ``check`` refuses.
    """
    declared = city.datasets()
    panels = load_panels(city.root, check, {name: ds for name, (_, ds) in declared.items()})
    served_now = datasets or (lambda: declared.keys())
    areas = _Areas(city)
    info = {"name": city.info.name, "title": city.info.title or city.info.name,
            "name_zh": city.info.name_zh, "districts": list(areas.districts.values()),
            "streets": list(areas.streets.values())}

    @app.get("/cockpit/city.json", tags=["cockpit"])
    def city_info() -> dict[str, Any]:
        """The city's name and areas (labels in Chinese and English)."""
        return info

    @app.get("/cockpit/panels.json", tags=["cockpit"], responses=ERRORS)
    def panels_json(level: Annotated[Level, Query()] = "city",
                    area: Annotated[str | None, Query(max_length=100)] = None
                    ) -> dict[str, Any]:
        """The panels of one page that read datasets this city has, their SQL bound to its
        area (run by the page as the viewer: the hub's grants decide what comes back)."""
        areas.check(level, area)
        have = set(served_now())
        return {"level": level, "area": area,
                "panels": [p.bound(level, area) for p in panels
                           if level in p.shown_on() and served(p, have)]}

    @app.get("/cockpit/geo/{level}.geojson", tags=["cockpit"],
             responses={404: ERRORS[404]})
    def geo(level: str) -> JSONResponse:
        """District or street polygons."""
        if level not in areas.geo:
            raise NotFound(f"no polygons `{level}`; there are districts and streets")
        return JSONResponse(areas.geo[level], media_type="application/geo+json")

    app.mount("/cockpit/static", StaticFiles(directory=STATIC), name="cockpit-static")

    def page() -> Response:
        return FileResponse(STATIC / "index.html", headers={
            "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"})

    for path in ("/cockpit", "/cockpit/", *(f"/cockpit/{lv}/{{area}}" for lv in LEVELS[1:])):
        app.add_api_route(path, page, methods=["GET"], include_in_schema=False)
