"""Rows of the governed answer (``protocol.ngsild.sql``'s columns) as NGSI-LD entities:
normalized (each attribute a Property, the location a GeoProperty), concise, keyValues,
or GeoJSON Features. An attribute whose value is NULL is absent, as NGSI-LD has no nulls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zhongshu.protocol.ngsild.sql import Part, alias


@dataclass(frozen=True)
class Shape:
    """How entities are written: ``form`` normalized, concise or keyValues; ``sys_attrs``
    adds ``modifiedAt`` (the observation time, where the mapping declares one); ``keep``:
    the attributes asked for (None: all)."""

    form: str = "normalized"
    sys_attrs: bool = False
    keep: frozenset[str] | None = None


def _value(part: Part, attr: str, v: Any) -> Any:
    a = part.offer.mapping.attribute(attr)
    if a.values:
        key = ("true" if v else "false") if isinstance(v, bool) else str(v)
        return a.values.get(key, v)
    return v


def _time(v: Any) -> str | None:
    return str(v).replace(" ", "T", 1) if v is not None else None


def entity(row: dict[str, Any], parts: list[Part], every: list[str], shape: Shape
           ) -> dict[str, Any]:
    """One entity from one answer row (a dict by column name)."""
    part = parts[int(row["_m"])]
    m = part.offer.mapping
    out: dict[str, Any] = {"id": row["id"], "type": m.type}
    observed = _time(row.get("_obs"))
    for attr in every:
        v = row.get(alias(attr))
        if v is None or attr not in part.attrs or (shape.keep is not None and
                                                   attr not in shape.keep):
            continue
        v = _value(part, attr, v)
        stamp = observed if m.attribute(attr).observed else None
        if shape.form == "keyValues":
            out[attr] = v
            continue
        prop: dict[str, Any] = {"type": "Property", "value": v}
        if stamp:
            prop["observedAt"] = stamp
        if shape.sys_attrs and observed:
            prop["modifiedAt"] = observed
        if shape.form == "concise":
            prop.pop("type")
            out[attr] = v if len(prop) == 1 else prop
        else:
            out[attr] = prop
    if row.get("_lon") is not None and row.get("_lat") is not None and (
            shape.keep is None or "location" in shape.keep):
        point = {"type": "Point", "coordinates": [row["_lon"], row["_lat"]]}
        out["location"] = point if shape.form in ("keyValues", "concise") else {
            "type": "GeoProperty", "value": point}
    if shape.sys_attrs and observed and shape.form != "keyValues":
        out["modifiedAt"] = observed
    return out


def feature(e: dict[str, Any], form: str) -> dict[str, Any]:
    """An entity as a GeoJSON Feature (GS CIM 009 §4.5.16): the location its geometry,
    ``type`` and the attributes its properties."""
    loc = e.get("location")
    geometry = (loc.get("value") if isinstance(loc, dict) and loc.get("type") == "GeoProperty"
                else loc)
    props = {k: v for k, v in e.items() if k not in ("id", "@context")}
    return {"id": e["id"], "type": "Feature", "geometry": geometry, "properties": props}
