"""Distance on the Earth: the one great-circle formula the hub's code uses (the demo city's
road lengths, the parking scenario's walking distances and its NGSI-LD ``georel=near``).

The haversine formula on a sphere of the IUGG mean Earth radius: within 0.5 % of the
ellipsoid's distance, far below what a city street map needs. SQL has no such function
here (DuckDB 1.5.5 has none, and the firewall allows none): a query computes distances from
``sin``, ``cos``, ``asin``, ``sqrt`` and ``radians``, which it may call.
"""

from __future__ import annotations

import math

EARTH_M = 6_371_008.8
"""The mean Earth radius (IUGG, R₁), in metres."""


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres between two points given in degrees (haversine).

    >>> round(distance_m(120.15, 30.25, 120.15, 30.26), 1)  # 0.01° of latitude
    1112.0
    >>> distance_m(0, 0, 180, 0) == math.pi * EARTH_M
    True
    """
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_M * math.asin(math.sqrt(min(1.0, h)))
