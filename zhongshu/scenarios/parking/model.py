"""One view of free spaces: each operator's garages mapped (by the declared mapping) onto
the Smart Data Models ``OffStreetParking`` entity, read through the hub as the parking
scenario's member."""

from __future__ import annotations

import math
import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from zhongshu.client import Hub

MAPPING = Path(__file__).with_name("mapping.toml")
_COL = r"^[a-z_][a-z0-9_]*$"
_DATASET = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"
EARTH_M = 6_371_008.8  # mean Earth radius (IUGG), metres


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
    """Great-circle distance in metres between two [lon, lat] points (haversine)."""
    lon1, lat1, lon2, lat2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * \
        math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_M * math.asin(math.sqrt(h))
