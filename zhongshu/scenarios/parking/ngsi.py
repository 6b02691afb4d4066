"""The NGSI-LD face of the parking view (ETSI GS CIM 009): entity queries with ``type``,
``q`` on the spot numbers, ``georel=near;maxDistance==M`` around a point, key-values or
normalized form, so FIWARE tools can read it."""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from typing import Any

from zhongshu.scenarios.parking.model import distance_m

CONTEXT = ["https://raw.githubusercontent.com/smart-data-models/dataModel.Parking/master/"
           "context.jsonld", "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"]
BAD_REQUEST = "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, ">=": operator.ge, "<=": operator.le,
    ">": operator.gt, "<": operator.lt}
_Q = re.compile(r"^(availableSpotNumber|totalSpotNumber)(==|!=|>=|<=|>|<)(-?\d+)$")
_NEAR = re.compile(r"^near;(maxDistance|minDistance)==(\d+(\.\d+)?)$")


class NgsiError(ValueError):
    """A request NGSI-LD answers with BadRequestData (400)."""


def parse_q(q: str | None) -> list[tuple[str, Callable[[Any, Any], bool], int]]:
    """``availableSpotNumber>10;totalSpotNumber<=200`` → conditions (all must hold)."""
    if not q:
        return []
    out = []
    for part in q.split(";"):
        m = _Q.match(part.strip())
        if not m:
            raise NgsiError(f"q term `{part}` not understood: use availableSpotNumber or "
                            "totalSpotNumber with ==, !=, >, >=, <, <= and an integer; join "
                            "terms with ;")
        out.append((m.group(1), _OPS[m.group(2)], int(m.group(3))))
    return out


def parse_near(georel: str | None, geometry: str | None, coords: str | None
               ) -> tuple[str, float, list[float]] | None:
    """``near;maxDistance==M`` around ``geometry=Point&coords=[lon,lat]`` → (kind, metres,
    point)."""
    if georel is None:
        if geometry or coords:
            raise NgsiError("geometry and coords need georel")
        return None
    m = _NEAR.match(georel)
    if not m:
        raise NgsiError("georel must be near;maxDistance==METRES or near;minDistance==METRES")
    if geometry != "Point":
        raise NgsiError("georel=near needs geometry=Point")
    try:
        point = json.loads(coords or "")
    except json.JSONDecodeError:
        point = None
    if not (isinstance(point, list) and len(point) == 2 and
            all(isinstance(v, (int, float)) for v in point) and
            -180 <= point[0] <= 180 and -90 <= point[1] <= 90):
        raise NgsiError("coords must be [longitude, latitude]")
    return m.group(1), float(m.group(2)), [float(point[0]), float(point[1])]


def select(entities: list[dict[str, Any]], q: str | None, georel: str | None,
           geometry: str | None, coords: str | None) -> list[dict[str, Any]]:
    """The entities matching the query; with ``near``, nearest first."""
    conditions = parse_q(q)
    near = parse_near(georel, geometry, coords)
    out = []
    for e in entities:
        if not all(attr in e and op(e[attr], value) for attr, op, value in conditions):
            continue
        if near is not None:
            kind, metres, point = near
            d = distance_m(point, e["location"]["coordinates"])
            if (kind == "maxDistance" and d > metres) or (kind == "minDistance" and d < metres):
                continue
            e = {**e, "_distance": d}
        out.append(e)
    if near is not None:
        out.sort(key=lambda e: (e["_distance"], e["id"]))
        out = [{k: v for k, v in e.items() if k != "_distance"} for e in out]
    return out


def normalized(entity: dict[str, Any]) -> dict[str, Any]:
    """The NGSI-LD normalized form: each attribute a Property (``observedAt`` on the spot
    count), the location a GeoProperty."""
    out: dict[str, Any] = {"id": entity["id"], "type": entity["type"]}
    for key, value in entity.items():
        if key in ("id", "type", "dateModified"):
            continue
        if key == "location":
            out[key] = {"type": "GeoProperty", "value": value}
        else:
            out[key] = {"type": "Property", "value": value}
            if key == "availableSpotNumber" and "dateModified" in entity:
                out[key]["observedAt"] = entity["dateModified"]
    if "dateModified" in entity:
        out["dateModified"] = {"type": "Property", "value": {
            "@type": "DateTime", "@value": entity["dateModified"]}}
    out["@context"] = CONTEXT
    return out
