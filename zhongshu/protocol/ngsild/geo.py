"""NGSI-LD geo-queries (``georel``, ``geometry``, ``coordinates``) over an entity's
``location`` point, as a sqlglot condition on the mapping's longitude and latitude columns.

Supported: ``near;maxDistance==M`` / ``near;minDistance==M`` around a Point (great-circle
distance on a sphere of the mean Earth radius), and ``within`` / ``intersects`` /
``disjoint`` / ``equals`` with a Point or a Polygon (holes allowed: even-odd rule). Every
number is checked finite and in range, then enters the SQL as a literal.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from sqlglot import exp, parse_one

from zhongshu.protocol.ngsild.qlang import QueryError

EARTH_RADIUS_M = 6_371_008.8
MAX_VERTICES = 500
RELS = ("near", "within", "intersects", "disjoint", "equals")
_NEAR = re.compile(r"^near;(maxDistance|minDistance)==(\d+(\.\d+)?)$")
_HAVERSINE = parse_one(
    "2 * :r * ASIN(LEAST(1.0, SQRT(POWER(SIN(RADIANS(:lat - :y) / 2), 2) + "
    "COS(RADIANS(:y)) * COS(RADIANS(:lat)) * POWER(SIN(RADIANS(:lon - :x) / 2), 2))))")


@dataclass(frozen=True)
class GeoQuery:
    """A checked geo-query: ``rel`` one of :data:`RELS`; ``distance`` for near
    (``("maxDistance" | "minDistance", metres)``); ``point`` or ``rings`` (Polygon)."""

    rel: str
    distance: tuple[str, float] | None
    point: tuple[float, float] | None
    rings: tuple[tuple[tuple[float, float], ...], ...] = ()


def _position(v: Any) -> tuple[float, float]:
    if not (isinstance(v, list) and len(v) == 2 and all(
            isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c)
            for c in v)):
        raise QueryError("coordinates: a position is [longitude, latitude]")
    lon, lat = float(v[0]), float(v[1])
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise QueryError("coordinates: longitude within [-180, 180], latitude within [-90, 90]")
    return lon, lat


def parse(georel: str | None, geometry: str | None, coordinates: Any,
          geoproperty: str | None = None) -> GeoQuery | None:
    """The geo-query of a request (``coordinates`` as text or already parsed), or None.

    Raises:
        QueryError: incomplete, or a relation, geometry or property not offered.
    """
    if georel is None and geometry is None and coordinates is None:
        return None
    if georel is None or geometry is None or coordinates is None:
        raise QueryError("a geo-query needs georel, geometry and coordinates together")
    if geoproperty not in (None, "location"):
        raise QueryError("geoproperty: the entities offered have one GeoProperty, `location`")
    if isinstance(coordinates, str):
        try:
            coordinates = json.loads(coordinates)
        except ValueError:
            raise QueryError("coordinates must be a JSON array ([lon,lat] for a Point)") \
                from None
    rel = georel.split(";", 1)[0]
    if rel not in RELS:
        raise QueryError(f"georel `{rel}` is not supported here; use one of "
                         f"{', '.join(RELS)}")
    distance = None
    if rel == "near":
        m = _NEAR.match(georel)
        if not m:
            raise QueryError("georel near reads near;maxDistance==METRES or "
                             "near;minDistance==METRES")
        distance = (m.group(1), float(m.group(2)))
    elif georel != rel:
        raise QueryError(f"georel `{rel}` takes no modifier")
    if geometry == "Point":
        return GeoQuery(rel, distance, _position(coordinates))
    if geometry != "Polygon":
        raise QueryError(f"geometry `{geometry}` is not supported here; use Point or Polygon")
    if rel in ("near", "equals"):
        raise QueryError(f"georel {rel} needs geometry=Point")
    if not (isinstance(coordinates, list) and coordinates and
            all(isinstance(r, list) for r in coordinates)):
        raise QueryError("coordinates of a Polygon: a list of rings, each a list of positions")
    rings = tuple(tuple(_position(p) for p in r) for r in coordinates)
    if sum(len(r) for r in rings) > MAX_VERTICES:
        raise QueryError(f"a Polygon of at most {MAX_VERTICES} positions")
    for r in rings:
        if len(r) < 4 or r[0] != r[-1]:
            raise QueryError("each ring of a Polygon has four positions or more, the last "
                             "equal to the first")
    return GeoQuery(rel, None, None, rings)


def condition(g: GeoQuery, lon: exp.Expr, lat: exp.Expr) -> exp.Expr:
    """The SQL condition that the point (``lon``, ``lat``) satisfies ``g``."""
    located = exp.and_(exp.Not(this=exp.Is(this=lon.copy(), expression=exp.Null())),
                       exp.Not(this=exp.Is(this=lat.copy(), expression=exp.Null())))
    if g.point is not None:
        x, y = g.point
        if g.rel == "near":
            assert g.distance is not None
            d = exp.replace_placeholders(_HAVERSINE.copy(), r=EARTH_RADIUS_M, lon=lon.copy(),
                                         lat=lat.copy(), x=x, y=y)
            kind, metres = g.distance
            cond: exp.Expr = (exp.LTE if kind == "maxDistance" else exp.GTE)(
                this=exp.paren(d), expression=exp.convert(metres))
        else:
            cond = exp.and_(exp.EQ(this=lon.copy(), expression=exp.convert(x)),
                            exp.EQ(this=lat.copy(), expression=exp.convert(y)))
    else:
        cond = _inside(g.rings, lon, lat)
    if g.rel == "disjoint":
        cond = exp.Not(this=exp.paren(cond))
    return exp.and_(located, exp.paren(cond))


def _inside(rings: tuple[tuple[tuple[float, float], ...], ...], lon: exp.Expr,
            lat: exp.Expr) -> exp.Expr:
    """Even-odd rule: a horizontal ray from the point crosses the rings' edges an odd
    number of times."""
    crossings: list[exp.Expr] = []
    for ring in rings:
        for (xi, yi), (xj, yj) in zip(ring, ring[1:], strict=False):
            if yi == yj:
                continue  # a horizontal edge is never crossed by a horizontal ray
            k = (xj - xi) / (yj - yi)
            spans = exp.NEQ(this=exp.paren(exp.LT(this=lat.copy(), expression=exp.convert(yi))),
                            expression=exp.paren(exp.LT(this=lat.copy(),
                                                        expression=exp.convert(yj))))
            left = exp.LT(this=lon.copy(), expression=exp.Add(
                this=exp.Mul(this=exp.convert(k), expression=exp.paren(
                    exp.Sub(this=lat.copy(), expression=exp.convert(yi)))),
                expression=exp.convert(xi)))
            crossings.append(exp.Case(ifs=[exp.If(this=exp.and_(spans, left),
                                                  true=exp.convert(1))],
                                      default=exp.convert(0)))
    if not crossings:
        return exp.false()
    total: exp.Expr = crossings[0]
    for c in crossings[1:]:
        total = exp.Add(this=total, expression=c)
    return exp.EQ(this=exp.Mod(this=exp.paren(total), expression=exp.convert(2)),
                  expression=exp.convert(1))
