"""``zhongshu trees import``: the parks department imports a tree survey into its own Parquet
folder (the owner's action on the owner's store); the hub then reads it as a dataset."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from zhongshu.errors import BadRequest, ConfigError

trees_app = typer.Typer(help="Tree surveys (the parks department's own store).",
                        no_args_is_help=True)
out = Console(width=None if sys.stdout.isatty() else 240)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 240)
SHOWN = 50


@trees_app.command("import")
def import_survey(
        file: Annotated[Path, typer.Argument(help="the survey: .csv (header row), .parquet or "
                                                  ".geojson (Point features)")],
        name: Annotated[str, typer.Option("--survey", help="its name, e.g. 2027-spring")],
        city_dir: Annotated[Path, typer.Option("--dir", help="the city folder")] = Path("."),
        dataset: Annotated[str, typer.Option(help="the dataset that serves surveys")]
        = "parks.tree_surveys") -> None:
    """Check a survey row by row and, if every row is valid, write it into the folder of
    the source serving ``dataset`` (nothing is written otherwise)."""
    from zhongshu.config import load_city
    from zhongshu.scenarios.trees import survey

    city = load_city(city_dir)
    owner, ds = city.datasets().get(dataset, (None, None))
    if ds is None or ds.table is None:
        raise ConfigError(f"no dataset `{dataset}` served from a table in this city",
                          path=str(city_dir))
    _, src = city.sources()[ds.source]
    if src.kind != "parquet" or not src.path:
        raise ConfigError(f"`{dataset}` is not served from a Parquet folder (source "
                          f"`{src.name}` is {src.kind})")
    streets, bbox = _geography(city.root)
    rows, errors = survey.validate(survey.read_rows(file), streets, date.today().year, bbox)
    if errors:
        for e in errors[:SHOWN]:
            err.print(f"{file.name}: {e}", highlight=False, soft_wrap=True)
        more = f" (the first {SHOWN} shown)" if len(errors) > SHOWN else ""
        raise BadRequest(f"{len(errors)} invalid value(s) in {len(rows)} row(s){more}; "
                         "nothing was imported")
    if not rows:
        raise BadRequest(f"{file.name} holds no trees; nothing was imported")
    try:  # the folder of the dataset's table: one Parquet file per survey
        target = survey.write(city.root / src.path / ds.table, name, rows)
    except ValueError as e:
        raise BadRequest(str(e)) from None
    out.print(f"Imported {len(rows):,} trees as survey {name} for {owner} into {target}; the "
              f"hub reads it as {dataset}.")


def _geography(root: Path) -> tuple[dict[str, str], tuple[float, float, float, float]]:
    """The city's streets (→ district) and bounding box, from its polygons."""
    def features(level: str) -> list[dict[str, Any]]:
        path = root / "geo" / f"{level}.geojson"
        if not path.is_file():
            raise ConfigError(f"no {path.name}: the city's polygons are needed to check a "
                              "survey", path=str(path))
        polygons: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["features"]
        return polygons

    streets = {f["properties"]["street"]: f["properties"]["district"]
               for f in features("streets")}
    points = [pt for f in features("districts")
              for ring in f["geometry"]["coordinates"] for pt in ring]
    lons, lats = [p[0] for p in points], [p[1] for p in points]
    return streets, (min(lons), min(lats), max(lons), max(lats))
