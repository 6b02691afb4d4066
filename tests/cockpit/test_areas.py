"""The cockpit's areas and settings from the city's own files: `[[streets]]` in city.toml,
each grant's `areas` in `GET /v1/grants`, the panels `cockpit.toml` asks to be made, and
`zhongshu init`'s starter files."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningHub
from tests.test_cli import zs
from zhongshu.cockpit.panels import load_panels
from zhongshu.config import load_city
from zhongshu.demo.geography import DISTRICTS, STREETS
from zhongshu.errors import ConfigError

CITY = '''[city]
name = "puer"

[[districts]]
name = "simao"
code = "530802"

[[districts]]
name = "ninger"
code = "530821"

[[streets]]
name = "simao-simaojie"
district = "simao"
code = "530802001"
'''


def _city(root: Path, extra: str = "") -> Path:
    (root / "members").mkdir(parents=True)
    (root / "city.toml").write_text(CITY + extra, encoding="utf-8")
    return root


def test_streets_are_read_from_city_toml(tmp_path: Path) -> None:
    city = load_city(_city(tmp_path))
    assert [(s.name, s.district, s.code) for s in city.streets] == [
        ("simao-simaojie", "simao", "530802001")]


@pytest.mark.parametrize(("extra", "at", "words"), [
    ('[[streets]]\nname = "lancang-menglang"\ndistrict = "lancang"', 'district = "lancang"',
     "no district `lancang`"),
    ('[[streets]]\nname = "ninger-x"\ndistrict = "ninger"\ncode = "530802001"',
     'code = "530802001"', "also the name or code of the street `simao-simaojie`"),
    ('[[streets]]\nname = "simao"\ndistrict = "ninger"', 'name = "simao"',
     "each area has its own"),
    ('[[streets]]\nname = "ninger-x"\ndistrict = "ninger"\ncode = "5308"', 'code = "5308"',
     "code"),
])
def test_a_bad_street_names_the_line(tmp_path: Path, extra: str, at: str, words: str
                                     ) -> None:
    with pytest.raises(ConfigError, match=words) as e:
        load_city(_city(tmp_path, f"\n{extra}\n"))
    # the last line of the file that says `at`
    lines = (tmp_path / "city.toml").read_text().splitlines()
    assert e.value.line == len(lines) - lines[::-1].index(at)
    assert str(e.value.path).endswith("city.toml")


def test_the_demo_writes_its_streets_with_their_codes(demo_dir: Path) -> None:
    city = load_city(demo_dir)
    want = {f"{d}-{s}" for d, streets in STREETS.items() for s, _ in streets}
    assert {s.name for s in city.streets} == want
    codes = {d: c for d, c, _, _ in DISTRICTS}
    for s in city.streets:
        assert s.code[:6] == codes[s.district] and len(s.code) == 9


def test_grants_say_which_areas_their_row_scopes_let_through(hub: RunningHub) -> None:
    """In the demo city, every grant to cockpit-xihu is scoped to Xihu — by name, by the
    district's code (`area_code = '330106'`) or through another dataset — and none to
    cockpit-city is scoped at all."""
    for member, want in (("cockpit-xihu", ["xihu"]), ("cockpit-city", None)):
        r = httpx.get(f"{hub.url}/v1/grants", timeout=30,
                      headers={"Authorization": f"Bearer {hub.token(member)}"})
        received = r.json()["received"]
        assert received and {g["dataset"]: g["areas"] for g in received} == {
            g["dataset"]: want for g in received}
    by_code = next(g for g in httpx.get(
        f"{hub.url}/v1/grants", timeout=30,
        headers={"Authorization": f"Bearer {hub.token('cockpit-xihu')}"}).json()["received"]
        if g["dataset"] == "parking_qiantang.lots")
    assert by_code["row_scope"] == "area_code = '330106'"


def test_population_and_dataset_panels_are_made_from_the_citys_datasets(
        demo_dir: Path, tmp_path: Path) -> None:
    city = load_city(demo_dir)
    datasets = {name: ds for name, (_, ds) in city.datasets().items()}
    panels = {p.id: p for p in load_panels(demo_dir, datasets=datasets)}
    residents = panels["population-districts"]
    assert residents.shown_on() == ["city", "district"]
    assert residents.bound("district", "xihu")["sql"] == (
        "SELECT sum(population) AS residents, round(sum(area_km2), 1) AS area_km2 FROM "
        "civil.districts WHERE district = 'xihu'")
    assert panels["population-streets"].shown_on() == ["street"]
    assert not any(p.startswith("dataset-") for p in panels)  # the demo does not ask
    # without [population], no residents are shown; with dataset_panels, one panel for each
    # dataset no other panel reads
    (tmp_path / "cockpit.toml").write_text("dataset_panels = true\n", encoding="utf-8")
    made = {p.id: p for p in load_panels(tmp_path, datasets=datasets)}
    assert not any(p.startswith("population-") for p in made)
    read = {d for p in made.values() if not p.id.startswith("dataset-") for d in p.datasets}
    for name, ds in datasets.items():
        pid = "dataset-" + name.replace(".", "-").replace("_", "-")
        if name in read:
            assert pid not in made and f"{pid}-areas" not in made
        elif ds.area_column:
            assert made[f"{pid}-areas"].shown_on() == ["city"] and \
                made[pid].shown_on() == ["district"]
        else:
            assert made[pid].shown_on() == ["city"]
    assert "dataset-credit-scores" in made and "dataset-parks-trees" not in made


def test_init_writes_a_starter_cockpit_and_an_empty_geo_folder(tmp_path: Path) -> None:
    root = tmp_path / "puer"
    assert zs("init", "puer", "--dir", str(root)).returncode == 0
    assert "dataset_panels = true" in (root / "cockpit.toml").read_text()
    assert [p.name for p in (root / "geo").iterdir()] == ["README.md"]
    readme = (root / "geo" / "README.md").read_text()
    assert "districts.geojson" in readme and "streets.geojson" in readme
    assert "[[streets]]" in (root / "city.toml").read_text()
    panels = load_panels(root, datasets={})  # the starter loads
    assert panels
