"""The cockpit starts from the city itself (issue 21, stops 1 and 3), in real headless
Chromium: which pages a viewer may open comes from what the hub says of its grants (their
row scopes by area), never from reading `civil.districts`; a new city's pages show its own
datasets' panels and none of the demo's.

Oracles that do not share the code under test: the grants written into the member files (who
may see which district), the CSV rows the test writes (what the panels must count), and the
hub's own answers to the same SQL through the client."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cockpit.test_cockpit import _require_chromium, _settle, _until
from tests.conftest import HubProcess, copy_demo_city, free_port, readable_dir
from tests.test_cli import zs
from zhongshu.client import Hub

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _token(root: Path, member: str) -> str:
    res = zs("members", "token", member, "--dir", str(root))
    assert res.returncode == 0, res.stderr
    return res.stdout.strip().splitlines()[-1]


def _signed_in(browser: Any, url: str, token: str, path: str = "/cockpit/") -> Any:
    page = browser.new_context(viewport={"width": 1600, "height": 1000},
                               locale="zh-CN").new_page()
    page.goto(f"{url}{path}")  # signing in reloads the same page
    page.fill("#token", token)
    with page.expect_navigation():
        page.click("#signin button")
    return page


def _denied(page: Any) -> bool:
    _until(page, "() => document.body.dataset.denied === 'true' || "
                 "(window.__zs && window.__zs.expected > 0)", 20, "the page decided")
    return page.get_attribute("body", "data-denied") == "true"


def _serve(root: Path) -> Iterator[str]:
    hub = HubProcess(root, free_port())
    try:
        yield hub.url
    finally:
        hub.stop()


# --- the demo city without civil.districts ---------------------------------------------------

@pytest.fixture(scope="module")
def demo_without_civil(demo_dir: Path) -> Iterator[tuple[str, Path]]:
    """The demo city with no civil-affairs member (so no `civil.districts`) and no cockpit
    settings that read it."""
    with readable_dir("zs-nocivil-") as base:
        root = copy_demo_city(demo_dir, base / "city")
        (root / "members" / "civil-affairs.toml").unlink()
        (root / "cockpit.toml").unlink()
        for url in _serve(root):
            yield url, root


def test_a_district_viewer_is_scoped_by_its_grants_without_civil_districts(
        demo_without_civil: tuple[str, Path], browser: Any) -> None:
    url, root = demo_without_civil
    token = _token(root, "cockpit-xihu")
    with Hub(url, token) as hub:
        assert all(d["name"] != "civil.districts" for d in hub.catalog())
    page = _signed_in(browser, url, token, "/cockpit/district/binjiang")
    assert _denied(page) and "无权访问" in page.inner_text("#status")
    assert page.eval_on_selector_all("article.panel", "els => els.length") == 0
    page.goto(f"{url}/cockpit/district/xihu")
    _settle(page)
    assert not _denied(page)
    assert page.get_attribute("body", "data-scope") == "xihu"
    assert page.eval_on_selector_all(
        "article.panel", "els => els.filter(e => e.dataset.state === 'ready').length") >= 5
    # the city page sends a one-district viewer to its district
    page.goto(f"{url}/cockpit/")
    _until(page, "() => location.pathname === '/cockpit/district/xihu'", 20, "redirected")
    page.context.close()
    # the city's own cockpit opens every page
    city = _signed_in(browser, url, _token(root, "cockpit-city"))
    _settle(city)
    assert not _denied(city)
    assert set(city.get_attribute("body", "data-scope").split()) == {
        "xihu", "shangcheng", "gongshu", "binjiang", "xiaoshan", "yuhang"}
    city.context.close()


# --- a new city from `zhongshu init` -----------------------------------------------------------

CITY_AREAS = '''
[[districts]]
name = "simao"
code = "530802"
name_zh = "思茅区"
title = "Simao"

[[districts]]
name = "ninger"
code = "530821"
name_zh = "宁洱县"
title = "Ning'er"

[[streets]]
name = "simao-simaojie"
district = "simao"
code = "530802001"
name_zh = "思茅街道"
title = "Simao Jie"

[[streets]]
name = "ninger-ningerzhen"
district = "ninger"
name_zh = "宁洱镇"
'''

PARKS = '''[member]
name = "parks"
kind = "department"
title = "Parks and Greening"

[[sources]]
name = "parks-files"
kind = "csv"
path = "data/parks"

[[datasets]]
name = "parks.trees"
title = "Trees"
description = "one row per tree"
source = "parks-files"
table = "trees"
area_column = "district"

[[datasets.columns]]
name = "tree_id"
type = "BIGINT"
classification = "public"

[[datasets.columns]]
name = "species"
type = "VARCHAR"
classification = "public"

[[datasets.columns]]
name = "district"
type = "VARCHAR"
classification = "public"

[[datasets.columns]]
name = "street"
type = "VARCHAR"
classification = "public"

[[datasets]]
name = "parks.gardens"
title = "Gardens"
description = "one row per public garden"
source = "parks-files"
table = "gardens"

[[datasets.columns]]
name = "garden"
type = "VARCHAR"
classification = "public"

[[grants]]
consumer = "cockpit-puer"
purposes = ["city-operations"]
datasets = ["parks.trees", "parks.gardens"]

[[grants]]
consumer = "cockpit-simao"
purposes = ["district-operations"]
datasets = ["parks.trees"]
row_scope = "district = 'simao'"
'''

TREES = [(1, "camphor", "simao", "simao-simaojie"), (2, "camphor", "simao", "simao-simaojie"),
         (3, "pine", "simao", "simao-simaojie"), (4, "tea", "ninger", "ninger-ningerzhen"),
         (5, "pine", "ninger", "ninger-ningerzhen")]


@pytest.fixture(scope="module")
def new_city() -> Iterator[tuple[str, Path]]:
    """`zhongshu init puer`, its districts and streets, a parks department with a CSV of
    trees and one of gardens, a city cockpit and a Simao cockpit — no civil.districts."""
    with readable_dir("zs-puer-") as base:
        root = base / "puer"
        assert zs("init", "puer", "--dir", str(root)).returncode == 0
        with (root / "city.toml").open("a", encoding="utf-8") as f:
            f.write(CITY_AREAS)
        (root / "data" / "parks").mkdir()
        (root / "data" / "parks" / "trees.csv").write_text(
            "tree_id,species,district,street\n"
            + "".join(f"{i},{s},{d},{st}\n" for i, s, d, st in TREES), encoding="utf-8")
        (root / "data" / "parks" / "gardens.csv").write_text("garden\nMeizihu\nXiyuan\n")
        (root / "members" / "parks.toml").write_text(PARKS, encoding="utf-8")
        for name, title in (("cockpit-puer", "Pu'er cockpit"), ("cockpit-simao", "Simao")):
            (root / "members" / f"{name}.toml").write_text(
                f'[member]\nname = "{name}"\nkind = "cockpit"\ntitle = "{title}"\n')
        res = zs("catalog", "check", "--dir", str(root))
        assert res.returncode == 0, res.stdout + res.stderr
        for url in _serve(root):
            yield url, root


def _panels(page: Any) -> dict[str, str]:
    return dict(page.eval_on_selector_all(
        "article.panel", "els => els.map(e => [e.dataset.panel, e.dataset.state])"))


def test_a_new_citys_first_page_shows_its_own_datasets_panels(
        new_city: tuple[str, Path], browser: Any) -> None:
    url, root = new_city
    token = _token(root, "cockpit-puer")
    page = _signed_in(browser, url, token)
    _settle(page)
    assert not _denied(page)
    shown = _panels(page)
    # the defaults that read parks.trees, a panel made for parks.gardens (which no default
    # reads), the hub — and nothing of the demo's traffic, parking or hospitals
    assert {"trees-species", "trees-area", "dataset-parks-gardens", "hub"} <= set(shown)
    assert all(s == "ready" for s in shown.values()), shown
    bound = page.evaluate("fetch('/cockpit/panels.json').then(r => r.json())")["panels"]
    read = {d for p in bound for d in p["datasets"]}
    assert read <= {"parks.trees", "parks.gardens"}, read
    titles = page.inner_text("#grid")
    assert "Westlake" not in titles and "西湖" not in titles
    drawn = page.evaluate("window.__zs.results")
    species: dict[str, int] = {}
    for _, s, _, _ in TREES:
        species[s] = species.get(s, 0) + 1
    assert {r[0]: r[1] for r in drawn["trees-species"]["rows"]} == species
    assert drawn["trees-area"]["rows"] == [["ninger", 2], ["simao", 3]]
    assert drawn["dataset-parks-gardens"]["rows"] == [[2]]
    # both districts are open to the city's cockpit, by its grants
    assert set(page.get_attribute("body", "data-scope").split()) == {"simao", "ninger"}
    assert set(page.eval_on_selector_all("#areas a", "els => els.map(a => a.dataset.area)")) \
        == {"simao", "ninger"}
    page.goto(f"{url}/cockpit/street/ninger-ningerzhen")
    _settle(page)
    assert not _denied(page) and "宁洱镇" in page.inner_text("#crumbs")
    assert page.evaluate("window.__zs.results['trees-species'].rows") == [["pine", 1],
                                                                         ["tea", 1]]
    page.context.close()


def test_a_new_citys_district_viewer_opens_only_its_district(
        new_city: tuple[str, Path], browser: Any) -> None:
    url, root = new_city
    token = _token(root, "cockpit-simao")
    with Hub(url, token) as hub:
        areas = [g["areas"] for g in hub.get("/v1/grants").json()["received"]]
    assert areas == [["simao"]]
    page = _signed_in(browser, url, token)
    _until(page, "() => location.pathname === '/cockpit/district/simao'", 20,
           "the city page sends a one-district viewer to its district")
    _settle(page)
    assert page.get_attribute("body", "data-scope") == "simao"
    assert page.evaluate("window.__zs.results['trees-species'].rows") == [["camphor", 2],
                                                                         ["pine", 1]]
    # parks.gardens is not granted to it: no panel of it
    assert "dataset-parks-gardens" not in _panels(page)
    page.goto(f"{url}/cockpit/district/ninger")
    assert _denied(page) and "无权访问" in page.inner_text("#status")
    page.goto(f"{url}/cockpit/street/ninger-ningerzhen")
    assert _denied(page)
    page.context.close()


def test_catalog_check_validates_cockpit_toml(new_city: tuple[str, Path], tmp_path: Path
                                              ) -> None:
    _, served = new_city
    root = tmp_path / "puer"
    shutil.copytree(served, root, ignore=shutil.ignore_patterns("state", "*.log", "ledger.pin"))
    starter = (root / "cockpit.toml").read_text(encoding="utf-8")
    cases = (  # what is added, the line the error must name, what it must say
        ('[[panels]]\nid = "cars"\ntitle = "Cars"\nkind = "number"\n'
         'datasets = ["traffic.passages"]\nsql = "SELECT count(*) AS n FROM traffic.passages"',
         'datasets = ["traffic.passages"]', "no dataset `traffic.passages`"),
        ('[[panels]]\nid = "x"\ntitle = "X"\nkind = "pie"\nsql = "SELECT 1"', 'kind = "pie"',
         "kind"),
        ('[[panels]]\nid = "x"\ntitle = "X"\nkind = "bar"\nsql = "SELECT 1"\ncolour = "red"',
         'colour = "red"', "colour"),
        ('hidden = ["hub"]', 'hidden = ["hub"]', "unknown key `hidden`"),
        ('[population.districts]\ndataset = "civil.districts"\narea = "district"',
         'dataset = "civil.districts"', "no dataset `civil.districts`"),
        ('[population.districts]\ndataset = "parks.trees"\narea = "district"\n'
         'residents = "people"', 'residents = "people"', "no column `people`"))
    for extra, where, words in cases:
        text = f"{starter}\n{extra}\n"
        (root / "cockpit.toml").write_text(text, encoding="utf-8")
        res = zs("catalog", "check", "--dir", str(root))
        out = res.stdout + res.stderr
        assert res.returncode == 1, (extra, out)
        line = text.splitlines().index(where) + 1
        assert f"cockpit.toml:{line}:" in out and words in out, (extra, out)
        assert "Traceback" not in out
