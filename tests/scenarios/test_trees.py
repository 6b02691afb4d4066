"""Count the trees through the HTTP protocol (a real hub process serving the scenario):
counts and densities equal what the parks and civil-affairs tables say; a survey the parks
department imports into its own folder is read by the hub at once and its changes against
the earlier one are exactly those made; a survey with invalid rows is refused row by row and
nothing is written."""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.scenarios.conftest import caller
from tests.test_cli import zs
from zhongshu.client import Hub
from zhongshu.demo.tokens import read_token

pytestmark = pytest.mark.slow
COLS = ["tree_id", "species", "district", "street", "lon", "lat", "planted_year", "girth_cm",
        "health"]


def _owner(url: str, root: Path, member: str, sql: str) -> list[dict[str, Any]]:
    with Hub(url, read_token(root, member)) as h:
        body = h.query_json(sql, "x", limit=100_000)
    names = [c["name"] for c in body["columns"]]
    return [dict(zip(names, r, strict=True)) for r in body["rows"]]


def _get(url: str, root: Path, path: str, **params: str) -> Any:
    r = httpx.get(f"{url}/scenarios/trees/{path}", params=params,
                  headers=caller(root, "cockpit-city"), timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_counts_by_every_dimension(hub: tuple[str, Path]) -> None:
    url, root = hub
    trees = _owner(url, root, "parks", f"SELECT {', '.join(COLS)} FROM parks.trees")
    age = date.today().year
    keyed = {"district": lambda t: t["district"], "street": lambda t: t["street"],
             "species": lambda t: t["species"], "health": lambda t: t["health"],
             "age_class": lambda t: "young" if age - t["planted_year"] < 10 else
             "mature" if age - t["planted_year"] < 30 else "old"}
    for by, key in keyed.items():
        want = Counter(key(t) for t in trees)
        got = {r[by]: r["trees"] for r in _get(url, root, "counts", by=by)}
        assert got == dict(want), by


def test_density_per_km2_and_per_resident(hub: tuple[str, Path]) -> None:
    url, root = hub
    trees = Counter(t["district"] for t in _owner(url, root, "parks",
                                                  "SELECT district FROM parks.trees"))
    districts = _owner(url, root, "civil-affairs",
                       "SELECT district, population, area_km2 FROM civil.districts")
    got = {r["district"]: r for r in _get(url, root, "density")}
    for d in districts:
        r = got[d["district"]]
        assert r["trees"] == trees[d["district"]]
        assert r["trees_per_km2"] == pytest.approx(trees[d["district"]] / d["area_km2"],
                                                   abs=1e-3)
        assert r["trees_per_1000_residents"] == pytest.approx(
            1000 * trees[d["district"]] / d["population"], abs=1e-3)
    streets = _get(url, root, "density", level="street")
    assert sum(s["trees"] for s in streets) == sum(trees.values())


def test_an_imported_survey_and_its_changes(hub: tuple[str, Path], tmp_path: Path) -> None:
    url, root = hub
    trees = _owner(url, root, "parks", f"SELECT {', '.join(COLS)} FROM parks.trees "
                                       "ORDER BY tree_id")
    # the next survey, as the parks department's surveyors deliver it
    gone = {t["tree_id"] for t in trees[:7]}
    sicker = {t["tree_id"] for t in trees[10:20] if t["health"] == "good"}
    later = []
    for t in trees:
        if t["tree_id"] in gone:
            continue
        later.append({**t, "health": "poor" if t["tree_id"] in sicker else t["health"],
                      "girth_cm": t["girth_cm"] + 2})
    new = [{**trees[0], "tree_id": f"N{k:04d}", "planted_year": date.today().year}
           for k in range(4)]
    path = tmp_path / "survey-2027.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, COLS)
        w.writeheader()
        w.writerows(later + new)
    res = zs("trees", "import", str(path), "--survey", "2027", "--dir", str(root))
    assert res.returncode == 0, res.stderr
    assert "Imported" in res.stdout
    assert {r["survey"]: r["trees"] for r in _get(url, root, "surveys")} == {
        "2026": len(trees), "2027": len(later) + len(new)}
    health = _get(url, root, "counts", by="health", survey="2027")
    assert {r["health"]: r["trees"] for r in health} == dict(Counter(t["health"]
                                                                    for t in later + new))
    rows = _get(url, root, "changes", **{"from": "2026", "to": "2027"})
    assert sum(r["added"] for r in rows) == len(new)
    assert sum(r["removed"] for r in rows) == len(gone)
    assert sum(r["sicker"] for r in rows) == len(sicker) > 0
    assert sum(r["healthier"] for r in rows) == 0
    by_district = {r["district"]: r for r in rows}
    for t in trees[:7]:
        assert by_district[t["district"]]["removed"] >= 1
    # the same import again is refused: a survey is never overwritten
    again = zs("trees", "import", str(path), "--survey", "2027", "--dir", str(root))
    assert again.returncode == 1 and "already imported" in again.stderr


def test_a_survey_with_bad_rows_is_refused_row_by_row(hub: tuple[str, Path],
                                                      tmp_path: Path) -> None:
    url, root = hub
    good = _owner(url, root, "parks", f"SELECT {', '.join(COLS)} FROM parks.trees LIMIT 3")
    bad = [dict(good[0]), {**good[1], "district": "atlantis"},
           {**good[2], "health": "splendid", "planted_year": 2999, "lon": 0.0}]
    features = [{"type": "Feature", "properties": {k: v for k, v in t.items()
                                                   if k not in ("lon", "lat")},
                 "geometry": {"type": "Point", "coordinates": [t["lon"], t["lat"]]}}
                for t in bad]
    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    before = sorted(p.name for p in (root / "data" / "parks" / "surveys").iterdir())
    res = zs("trees", "import", str(path), "--survey", "bad-one", "--dir", str(root))
    assert res.returncode == 1
    assert "row 2, district: no district 'atlantis'" in res.stderr
    assert "row 3, health: 'splendid'" in res.stderr
    assert "row 3, planted_year: 2999" in res.stderr
    assert "row 3, lon:" in res.stderr and "outside the city" in res.stderr
    assert "nothing was imported" in res.stderr and "Traceback" not in res.stderr
    assert sorted(p.name for p in (root / "data" / "parks" / "surveys").iterdir()) == before


def test_the_scenario_publishes_a_derived_dataset_of_its_own_member(
        hub: tuple[str, Path]) -> None:
    url, root = hub
    r = httpx.post(f"{url}/scenarios/trees/publish", params={"survey": "2026"},
                   headers=caller(root, "parks"), timeout=60)
    assert r.status_code == 200, r.text
    assert r.json() == {"survey": "2026", "dataset": "trees.density", "districts": 6}
    density = _get(url, root, "density", survey="2026")
    with Hub(url, read_token(root, "cockpit-city")) as city:
        rows = city.query_json("SELECT district, trees, trees_per_km2 FROM trees.density "
                               "WHERE survey = '2026' ORDER BY 1", "city-operations")["rows"]
        ds = city.dataset("trees.density")
    assert rows == [[d["district"], d["trees"], d["trees_per_km2"]] for d in density]
    assert ds["owner"] == "app-trees"
    assert "parks.tree_surveys" in ds["description"] and "civil.districts" in ds["description"]
    bad = httpx.post(f"{url}/scenarios/trees/publish", params={"survey": "1999"},
                     headers=caller(root, "parks"), timeout=60)
    assert bad.status_code == 400 and "no trees" in bad.json()["error"]["message"]
