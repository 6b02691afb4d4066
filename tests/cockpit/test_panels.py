"""Declared panels: bound to a page's area, overridden by a city's cockpit.toml, checked
with errors that name the file; unknown areas are refused."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningHub
from zhongshu.cockpit.panels import load_panels
from zhongshu.errors import ColumnNotFound, ConfigError


def test_binding_fills_the_area_predicate_and_the_child_column(tmp_path: Path) -> None:
    panels = {p.id: p for p in load_panels(tmp_path)}
    trees = panels["trees-species"]
    assert "WHERE TRUE" in trees.bound("city", None)["sql"]
    assert "WHERE district = 'xihu'" in trees.bound("district", "xihu")["sql"]
    assert "WHERE street = 'xihu-lingyin'" in trees.bound("street", "xihu-lingyin")["sql"]
    area_map = panels["area-map"]
    assert area_map.shown_on() == ["city", "district"]
    assert "SELECT c.district AS area" in area_map.bound("city", None)["sql"]
    assert "SELECT c.street AS area" in area_map.bound("district", "xihu")["sql"]
    assert panels["health-visits"].shown_on() == ["city", "district"]


def test_a_citys_cockpit_toml_replaces_adds_hides_and_orders(tmp_path: Path) -> None:
    (tmp_path / "cockpit.toml").write_text('''
hide = ["hub"]
order = ["lakes", "trees-species"]

[[panels]]
id = "trees-species"
title = "Trees"
kind = "number"
sql = "SELECT count(*) AS trees FROM parks.trees WHERE {where}"
area = { district = "district" }

[[panels]]
id = "lakes"
title = "Lakes"
kind = "table"
sql = "SELECT 1 AS lakes"
''', encoding="utf-8")
    panels = load_panels(tmp_path)
    ids = [p.id for p in panels]
    assert ids[:2] == ["lakes", "trees-species"] and "hub" not in ids
    trees = next(p for p in panels if p.id == "trees-species")
    assert trees.kind == "number" and trees.shown_on() == ["city", "district"]


def _no_street(sql: str, datasets: object) -> None:
    """The firewall's answer in a city whose parks.trees has no `street` column."""
    if "street" in sql and "parks.trees" in sql:
        raise ColumnNotFound("unknown column: 'street'")


def test_a_default_panel_leaves_out_the_levels_this_citys_dataset_cannot_answer(
        tmp_path: Path) -> None:
    """A new city's parks.trees without `street` once refused the whole city at `catalog
    check` and `serve`, naming the package's panels.toml; now the default trees panels are
    shown where the city's columns answer them, and a city's own panel is still refused."""
    panels = {p.id: p for p in load_panels(tmp_path, check=_no_street)}
    assert panels["trees-species"].shown_on() == ["city", "district"]
    assert panels["trees-area"].shown_on() == ["city"]  # its district page groups by street
    (tmp_path / "cockpit.toml").write_text(
        '[[panels]]\nid = "streets"\ntitle = "S"\nkind = "bar"\ndatasets = ["parks.trees"]\n'
        'sql = "SELECT street, count(*) FROM parks.trees WHERE {where} GROUP BY 1"\n',
        encoding="utf-8")
    with pytest.raises(ConfigError, match="street") as e:
        load_panels(tmp_path, check=_no_street)
    assert "cockpit.toml" in str(e.value.to_dict())


def test_fragments_are_shared_sql_a_city_may_use_and_add(tmp_path: Path) -> None:
    (tmp_path / "cockpit.toml").write_text('''
[fragments]
big_trees = "(SELECT * FROM parks.trees WHERE girth_cm > 100)"

[[panels]]
id = "big-trees"
title = "Big trees"
kind = "number"
sql = "SELECT count(*) AS trees FROM {big_trees} t WHERE {where}"

[[panels]]
id = "counted"
title = "Counting cameras"
kind = "number"
sql = "SELECT count(*) AS cameras FROM {counting_cameras} c WHERE c.counted"
''', encoding="utf-8")
    panels = {p.id: p for p in load_panels(tmp_path)}
    assert panels["big-trees"].bound("city", None)["sql"] == (
        "SELECT count(*) AS trees FROM (SELECT * FROM parks.trees WHERE girth_cm > 100) t "
        "WHERE TRUE")
    counted = panels["counted"].bound("city", None)["sql"]
    assert "min(camera_id) OVER (PARTITION BY segment_id) AS counted" in counted
    # the defaults that share it are written out the same way, nothing left unfilled
    for pid in ("vehicles-day", "area-map", "flow-by-hour"):
        sql = panels[pid].bound("city", None)["sql"]
        assert "{" not in sql and "PARTITION BY segment_id" in sql


@pytest.mark.parametrize(("text", "words"), [
    ('[[panels]]\nid = "x"\ntitle = "X"\nkind = "pie"\nsql = "SELECT 1"\n', "kind"),
    ('[[panels]]\nid = "x"\ntitle = "X"\nkind = "bar"\n', "needs `sql`"),
    ('[[panels]]\nid = "x"\ntitle = "X"\nkind = "bar"\nsql = "SELECT 1"\n'
     'levels = ["street"]\n', "no `area.street`"),
    ('[[panels]]\nid = "x"\ntitle = "X"\nkind = "bar"\nsql = "SELECT 1"\ncolour = "red"\n',
     "colour"),
    ("[[panels]\n", "cannot read"),
])
def test_a_bad_panel_names_the_file_and_the_fault(tmp_path: Path, text: str, words: str
                                                  ) -> None:
    (tmp_path / "cockpit.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=words) as e:
        load_panels(tmp_path)
    assert "cockpit.toml" in str(e.value.to_dict())


def test_the_pages_and_unknown_areas(hub: RunningHub) -> None:
    with httpx.Client(base_url=hub.url, timeout=30) as c:
        page = c.get("/cockpit/district/xihu")
        assert page.status_code == 200 and "script-src 'self'" in \
            page.headers["content-security-policy"]
        assert c.get("/cockpit/static/vendor/echarts.min.js").status_code == 200
        ok = c.get("/cockpit/panels.json", params={"level": "street",
                                                  "area": "xihu-lingyin"}).json()
        assert ok["panels"] and all("xihu-lingyin" in p["sql"] for p in ok["panels"]
                                    if "sql" in p)
        for params in ({"level": "district", "area": "atlantis"},
                       {"level": "district", "area": "xihu' OR TRUE --"},
                       {"level": "street", "area": "xihu"}):
            r = c.get("/cockpit/panels.json", params=params)
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert c.get("/cockpit/panels.json", params={"level": "planet"}).status_code == 400
        city = c.get("/cockpit/city.json").json()
        assert {d["name"] for d in city["districts"]} >= {"xihu", "binjiang"}
        assert any(s["name_zh"] == "灵隐街道" for s in city["streets"])


def test_a_scenario_contributes_panels_through_its_entry_point(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # an installed distribution, as pip leaves it: a module and its dist-info
    (tmp_path / "zs_plugin_demo.py").write_text(
        "def panels():\n"
        "    return [{'id': 'lakes', 'title': 'Lakes', 'kind': 'number',\n"
        "             'sql': 'SELECT 3 AS lakes'}]\n", encoding="utf-8")
    info = tmp_path / "zs_plugin_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zs-plugin-demo\n"
                                   "Version: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(
        "[zhongshu.cockpit_panels]\nlakes = zs_plugin_demo:panels\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    city = tmp_path / "city"
    city.mkdir()
    lakes = next(p for p in load_panels(city) if p.id == "lakes")
    assert lakes.bound("city", None)["sql"] == "SELECT 3 AS lakes"
