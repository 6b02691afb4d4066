"""A tree survey, as the parks department imports it into its own Parquet folder
(``zhongshu trees import``): read from CSV, Parquet or GeoJSON, checked row by row, written
as ``<folder>/surveys/<survey>.parquet`` — which the hub then reads like any source, as the dataset
``parks.tree_surveys``. A file with any invalid row is not imported at all (nothing half
done); every invalid row is reported with its number, column and reason."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

HEALTH = ("good", "fair", "poor")
SCHEMA = pa.schema([("survey", pa.string()), ("tree_id", pa.string()), ("species", pa.string()),
                    ("district", pa.string()), ("street", pa.string()), ("lon", pa.float64()),
                    ("lat", pa.float64()), ("planted_year", pa.int64()),
                    ("girth_cm", pa.float64()), ("health", pa.string())])
SURVEY_NAME = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,40}$")
FIELDS = [f.name for f in SCHEMA][1:]


@dataclass(frozen=True)
class RowError:
    """One invalid value: the row (1 = the first record), the column, why."""

    row: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.column}: {self.message}"


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The records of a CSV (header row), Parquet or GeoJSON (Point features; lon/lat from
    the geometry) file.

    Raises:
        ValueError: an unreadable file or an unknown format, with the reason.
    """
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with path.open(encoding="utf-8-sig", newline="") as f:
                return list(csv.DictReader(f))
        if suffix == ".parquet":
            records: list[dict[str, Any]] = pq.read_table(path).to_pylist()
            return records
        if suffix in (".geojson", ".json"):
            data = json.loads(path.read_text(encoding="utf-8"))
            rows = []
            for feat in data.get("features", []):
                props = dict(feat.get("properties") or {})
                geom = feat.get("geometry") or {}
                if geom.get("type") == "Point":
                    props.setdefault("lon", geom["coordinates"][0])
                    props.setdefault("lat", geom["coordinates"][1])
                rows.append(props)
            return rows
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, pa.ArrowException,
            csv.Error) as e:
        raise ValueError(f"cannot read {path.name}: {e}") from None
    raise ValueError(f"{path.name}: give a .csv, .parquet or .geojson file")


def validate(rows: list[dict[str, Any]], streets: dict[str, str], this_year: int,
             bbox: tuple[float, float, float, float]) -> tuple[list[dict[str, Any]],
                                                               list[RowError]]:
    """The rows in the survey's types, and every invalid value (``streets``: street →
    district of the city; ``bbox``: lon_min, lat_min, lon_max, lat_max of the city)."""
    districts = set(streets.values())
    out, errors, seen = [], [], set()
    for n, raw in enumerate(rows, 1):
        def err(col: str, msg: str, n: int = n) -> None:
            errors.append(RowError(n, col, msg))

        row: dict[str, Any] = {}
        for col in ("tree_id", "species", "district", "street", "health"):
            v: Any = raw.get(col)  # whatever the file holds, or None
            row[col] = None if v is None else str(v).strip()
            if not row[col]:
                err(col, "missing")
        for col, kind in (("lon", float), ("lat", float), ("girth_cm", float),
                          ("planted_year", int)):
            v = raw.get(col)
            try:
                row[col] = kind(float(v)) if kind is int else kind(v)
                if kind is int and float(v) != int(float(v)):
                    raise ValueError
            except (TypeError, ValueError):
                row[col] = None
                err(col, f"not a number: {v!r}" if v not in (None, "") else "missing")
        if row["tree_id"]:
            if row["tree_id"] in seen:
                err("tree_id", f"{row['tree_id']} appears twice")
            seen.add(row["tree_id"])
        if row["district"] and row["district"] not in districts:
            err("district", f"no district {row['district']!r} in this city")
        if row["street"] and row["district"] in districts and \
                streets.get(row["street"]) != row["district"]:
            err("street", f"{row['street']!r} is not a street of {row['district']}")
        if row["health"] and row["health"] not in HEALTH:
            err("health", f"{row['health']!r}: use one of {', '.join(HEALTH)}")
        if row["planted_year"] is not None and not 1500 <= row["planted_year"] <= this_year:
            err("planted_year", f"{row['planted_year']} is not a year up to {this_year}")
        if row["girth_cm"] is not None and not 0 < row["girth_cm"] < 3000:
            err("girth_cm", f"{row['girth_cm']} cm is not a trunk girth")
        if row["lon"] is not None and row["lat"] is not None and not (
                bbox[0] <= row["lon"] <= bbox[2] and bbox[1] <= row["lat"] <= bbox[3]):
            err("lon", f"({row['lon']}, {row['lat']}) is outside the city")
        out.append(row)
    return out, errors


def write(folder: Path, survey: str, rows: list[dict[str, Any]]) -> Path:
    """Write the survey as ``folder/<survey>.parquet`` (atomically); its path.

    Raises:
        ValueError: a bad survey name, or a survey of that name already there.
    """
    if not SURVEY_NAME.match(survey):
        raise ValueError("a survey name is letters, digits, '.', '_' or '-' (e.g. 2027-spring)")
    target = folder / f"{survey}.parquet"
    if target.exists():
        raise ValueError(f"survey {survey} is already imported ({target}); give another name")
    target.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist([{"survey": survey, **{k: r[k] for k in FIELDS}}
                                  for r in rows], schema=SCHEMA)
    tmp = target.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    tmp.chmod(0o644)  # the hub's DuckDB workers (an unprivileged user) read it
    tmp.rename(target)
    target.parent.chmod(0o755)
    return target
