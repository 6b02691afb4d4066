"""One view of free spaces: each operator's garages mapped (by the declared mapping) onto
the Smart Data Models ``OffStreetParking`` entity, read through the hub as the parking
scenario's member."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from zhongshu.client import Hub
from zhongshu.scenarios.parking import forecast
from zhongshu.traffic import geo

MAPPING = Path(__file__).with_name("mapping.toml")
_COL = r"^[a-z_][a-z0-9_]*$"
_DATASET = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"


class Available(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset: str | None = Field(default=None, pattern=_DATASET)
    key: str | None = Field(default=None, pattern=_COL)
    value: str = Field(pattern=r"^[a-z0-9_ +\-*/().]+$")
    time: str = Field(pattern=_COL)


class Operator(BaseModel):
    """One operator's mapping onto OffStreetParking."""

    model_config = ConfigDict(extra="forbid")
    operator: str
    dataset: str = Field(pattern=_DATASET)
    id: str = Field(pattern=_COL)
    name: str = Field(pattern=_COL)
    lon: str = Field(pattern=_COL)
    lat: str = Field(pattern=_COL)
    total: str = Field(pattern=_COL)
    district: str | None = Field(default=None, pattern=_COL)
    district_code: str | None = Field(default=None, pattern=_COL)
    available: Available

    @model_validator(mode="after")
    def _check(self) -> Operator:
        if (self.district is None) == (self.district_code is None):
            raise ValueError(f"operator {self.operator}: give one of `district` or "
                             "`district_code`")
        if (self.available.dataset is None) != (self.available.key is None):
            raise ValueError(f"operator {self.operator}: `available` from another dataset "
                             "needs both `dataset` and `key`")
        return self

    def sql(self) -> str:
        """The governed query giving this operator's garages in the common shape."""
        district = self.district or self.district_code
        a = self.available
        cols = (f"g.{self.id} AS id, g.{self.name} AS name, g.{self.lon} AS lon, "
                f"g.{self.lat} AS lat, g.{self.total} AS total, g.{district} AS district")
        if a.dataset is None:
            value = re.sub(r"([a-z_][a-z0-9_]*)", r"g.\1", a.value)
            return (f"SELECT {cols}, {value} AS available, g.{a.time} AS observed "
                    f"FROM {self.dataset} g")
        return (f"SELECT {cols}, n.available, n.observed FROM {self.dataset} g LEFT JOIN "
                f"(SELECT {a.key} AS k, arg_max({a.value}, {a.time}) AS available, "
                f"max({a.time}) AS observed FROM {a.dataset} GROUP BY 1) n ON n.k = g.{self.id}")


    def usual_sql(self) -> str | None:
        """The query of the operator's usual free spaces per weekday and hour (None when
        it keeps only a current count)."""
        a = self.available
        if a.dataset is None or a.key is None:
            return None
        return forecast.usual_sql(a.dataset, a.key, a.value, a.time)


def load_mapping(path: Path = MAPPING) -> list[Operator]:
    """The declared operators."""
    return [Operator.model_validate(o) for o in tomllib.loads(path.read_text("utf-8"))
            ["operators"]]


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    t = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def garages(hub: Hub, purpose: str, operators: list[Operator]) -> list[dict[str, Any]]:
    """Every garage of every operator as an OffStreetParking entity in key-values form (plus
    ``operator`` and ``district``). ``availableSpotNumber`` is the operator's own count,
    kept within 0…``totalSpotNumber`` (a count outside is a sensor fault, not free space).

    Raises:
        ZhongshuError: the hub's own refusal (a grant missing, a source down), unchanged.
    """
    codes = None
    out = []
    for op in operators:
        if op.district_code and codes is None:
            codes = {d["code"]: d["name"] for d in hub.get("/v1/city").json()["districts"]}
        for row in hub.query(op.sql(), purpose).to_pylist():
            district = row["district"]
            if op.district_code:
                district = (codes or {}).get(str(district), str(district))
            total = int(row["total"])
            free = row["available"]
            entity: dict[str, Any] = {
                "id": f"urn:ngsi-ld:OffStreetParking:{op.operator}:{row['id']}",
                "type": "OffStreetParking",
                "name": row["name"],
                "location": {"type": "Point",
                             "coordinates": [float(row["lon"]), float(row["lat"])]},
                "totalSpotNumber": total,
                "operator": op.operator,
                "district": district,
            }
            if free is not None:
                entity["availableSpotNumber"] = max(0, min(total, int(free)))
            if row["observed"] is not None:
                entity["dateModified"] = _iso(row["observed"])
            out.append(entity)
    return out


def distance_m(a: list[float], b: list[float]) -> float:
    """Great-circle distance in metres between two [lon, lat] points
    (:func:`zhongshu.traffic.geo.distance_m`)."""
    return geo.distance_m(a[0], a[1], b[0], b[1])


WALK_DETOUR = 1.25  # walking on a street grid, against the straight line
WALK_M_PER_MIN = 80.0  # 4.8 km/h


def nearest(hub: Hub, purpose: str, operators: list[Operator], lon: float, lat: float,
            arrive_at: datetime | None, max_walk_m: float, limit: int) -> list[dict[str, Any]]:
    """Garages within ``max_walk_m`` walking of the point, those expected to have a free
    space at arrival first, each group by walking distance. Walking distance: the
    great-circle distance × ``WALK_DETOUR``. Expected free spaces: see
    :mod:`zhongshu.scenarios.parking.forecast` (at the latest count when ``arrive_at`` is
    not given)."""
    usual: dict[str, dict[str, forecast.Usual]] = {}
    for op in operators:
        sql = op.usual_sql()
        if sql is not None:
            usual[op.operator] = forecast.usual_by_garage(hub.query(sql, purpose).to_pylist())
    out = []
    for e in garages(hub, purpose, operators):
        walk = distance_m([lon, lat], e["location"]["coordinates"]) * WALK_DETOUR
        if walk > max_walk_m or "availableSpotNumber" not in e or "dateModified" not in e:
            continue
        op, key = e["operator"], e["id"].rsplit(":", 1)[1]
        now = datetime.fromisoformat(e["dateModified"].replace("Z", "+00:00"))
        then = arrive_at if arrive_at is not None else now
        history = usual.get(op, {}).get(key)
        expected = forecast.expected_free(e["availableSpotNumber"], now, then,
                                          e["totalSpotNumber"], history)
        out.append({"id": e["id"], "name": e["name"], "operator": op, "district": e["district"],
                    "location": e["location"], "walk_m": round(walk),
                    "walk_min": round(walk / WALK_M_PER_MIN, 1),
                    "free_now": e["availableSpotNumber"], "counted_at": e["dateModified"],
                    "expected_free": round(expected, 1),
                    "method": "usual for the weekday and hour, plus today's difference "
                              "fading by half each hour" if history else
                              "latest count (the operator keeps no history)"})
    out.sort(key=lambda g: (g["expected_free"] < 1, g["walk_m"], g["id"]))
    return out[:limit]
