"""The NGSI-LD face (``/ngsi-ld/v1/``) against a real hub on the demo city: what it answers
equals the owners' own tables (read here straight from their SQLite files, not through the
hub), under each caller's grants; geo-queries equal a brute-force computation written here;
hostile parameters get 400 or rows the caller may see, never more."""

from __future__ import annotations

import json
import math
import os
import random
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from tests.conftest import RunningHub

NGSI = "/ngsi-ld/v1"
OSP = "OffStreetParking"
MODELS = Path(__file__).parents[1] / "scenarios" / "models"
COMMON = "https://smart-data-models.github.io/data-models/common-schema.json"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"

Truth = dict[str, dict[str, Any]]


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def truth(demo_dir: Path) -> Truth:
    """Every garage and lot as its owner's own table has it: id → name, total, lon, lat,
    district (short name), occupied (qiantang only)."""
    data = demo_dir / "data"
    codes = {"330106": "xihu", "330102": "shangcheng", "330105": "gongshu",
             "330108": "binjiang", "330109": "xiaoshan", "330110": "yuhang"}
    out: Truth = {}
    for g, name, district, lon, lat, total in _rows(
            data / "parking-westlake.sqlite",
            "SELECT garage_no, name, district, lng, lat, total_spaces FROM garages"):
        out[f"urn:ngsi-ld:{OSP}:westlake-{g}"] = {
            "name": name, "total": total, "lon": lon, "lat": lat, "district": district,
            "occupied": None}
    for lot, name, code, x, y, cap, occ in _rows(
            data / "parking-qiantang.sqlite",
            "SELECT lot_id, lot_name, area_code, x, y, capacity, occupied FROM lots"):
        out[f"urn:ngsi-ld:{OSP}:qiantang-{lot}"] = {
            "name": name, "total": cap, "lon": x, "lat": y, "district": codes[code],
            "occupied": occ}
    assert len(out) > 20
    return out


@pytest.fixture(scope="module")
def city(hub: RunningHub) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.url + NGSI, timeout=60, headers={
            "Authorization": f"Bearer {hub.token('cockpit-city')}"}) as c:
        yield c


@pytest.fixture(scope="module")
def xihu(hub: RunningHub) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.url + NGSI, timeout=60, headers={
            "Authorization": f"Bearer {hub.token('cockpit-xihu')}"}) as c:
        yield c


def _ok(r: httpx.Response) -> Any:
    assert r.status_code == 200, r.text
    return r.json()


def _ids(c: httpx.Client, **params: str) -> list[str]:
    body = _ok(c.get("/entities", params={"type": OSP, "limit": "1000",
                                          "options": "keyValues", **params}))
    return [e["id"] for e in body]


def _problem(r: httpx.Response, status: int, kind: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"]
    if kind is not None:
        assert body["type"] == ERRORS + kind, body
    return dict(body)


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Haversine on the IUGG mean radius, written here independently of the hub."""
    p1, p2 = math.radians(a[1]), math.radians(b[1])
    dp, dl = p2 - p1, math.radians(b[0] - a[0])
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.atan2(math.sqrt(h), math.sqrt(1 - h))


def test_without_a_token_every_route_is_401(hub: RunningHub) -> None:
    for method, path in (("GET", "/entities?type=OffStreetParking"), ("GET", "/types"),
                         ("GET", "/attributes"), ("POST", "/entityOperations/query"),
                         ("GET", "/entities/urn:ngsi-ld:OffStreetParking:westlake-WL001"),
                         ("DELETE", "/entities/x"), ("GET", "/nothing"),
                         ("GET", "/entities/?type=OffStreetParking"), ("GET", "/types/")):
        for headers in ({}, {"Authorization": "Bearer zs_nope"}):
            r = httpx.request(method, hub.url + NGSI + path, headers=headers)
            assert _problem(r, 401)["code"] == "unauthenticated"
            assert r.headers["www-authenticate"] == "Bearer"


def test_a_collection_with_a_trailing_slash_is_the_collection(city: httpx.Client) -> None:
    """``/entities/?…`` (what the ETSI test suite sends), ``/types/``, ``/attributes/``
    answer as without the slash; an entity's own path is unchanged."""
    for path, params in (("/entities", {"type": OSP, "limit": "1000"}), ("/types", {}),
                         ("/attributes", {})):
        assert _ok(city.get(path + "/", params=params)) == _ok(city.get(path, params=params))
    assert _ok(city.get("/entities/", params={"type": OSP, "limit": "1000"}))  # not empty
    _problem(city.delete("/entities/"), 405)


def test_lists_that_cannot_be_read_are_400_not_empty_answers(city: httpx.Client) -> None:
    """What the ETSI suite sends as bad input (018_18, 019_03_01, 019_18_03): a malformed
    attribute list, ids that are not URIs, ``attrs`` with ``omit`` — each a ``400``, never a
    ``200`` that quietly matches nothing."""
    one = "/entities/urn:ngsi-ld:OffStreetParking:westlake-WL001"
    for bad in ("id;name", "locatedAt{name", "locatedAt{}", "name||totalSpotNumber",
                "na me", "a=b"):
        for key in ("pick", "omit", "attrs"):
            _problem(city.get("/entities", params={"type": OSP, key: bad}), 400,
                     "BadRequestData")
        _problem(city.get(one, params={"pick": bad}), 400, "BadRequestData")
    _problem(city.get("/entities", params={"type": OSP, "id": "notaURI,alsonot"}), 400,
             "BadRequestData")
    _problem(city.get("/entities", params={"type": OSP, "attrs": "name", "omit": "name"}),
             400, "BadRequestData")
    full = "https://smartdatamodels.org/dataModel.Parking/totalSpotNumber"
    assert _ok(city.get(one, params={"pick": f"name,{full}"}))  # short and full names pass


def test_format_wins_over_options_and_unknown_forms_are_invalid_requests(
        city: httpx.Client) -> None:
    """(ETSI 018_15_07, 018_16): ``format`` names the representation even when ``options``
    names another; an unknown format or option is ``400 InvalidRequest``."""
    one = "/entities/urn:ngsi-ld:OffStreetParking:westlake-WL001"
    assert _ok(city.get(one, params={"options": "normalized", "format": "keyValues"})) == \
        _ok(city.get(one, params={"options": "keyValues"}))
    for params in ({"format": "invalidFormat"}, {"options": "invalidOptions"},
                   {"options": "keyValues,invalid"}):
        _problem(city.get(one, params=params), 400, "InvalidRequest")


def test_entities_equal_the_owners_tables(city: httpx.Client, truth: Truth) -> None:
    r = city.get("/entities", params={"type": OSP, "limit": "1000", "options": "keyValues"})
    body = _ok(r)
    assert r.headers["zhongshu-purpose"] == "city-operations"
    receipt = json.loads(r.headers["zhongshu-receipt"])
    assert set(receipt) == {"ledger", "index", "entry_hash"}
    assert "rel=\"http://www.w3.org/ns/json-ld#context\"" in r.headers["link"]
    got = {e["id"]: e for e in body}
    assert set(got) == set(truth) and len(body) == len(truth)
    assert [e["id"] for e in body] == sorted(got)  # ordered by id
    for i, t in truth.items():
        e = got[i]
        assert e["type"] == OSP and e["name"] == t["name"]
        assert e["totalSpotNumber"] == t["total"]
        assert e["location"] == {"type": "Point", "coordinates": [t["lon"], t["lat"]]}
        assert e.get("occupiedSpotNumber") == t["occupied"]
        assert "@context" not in e
    # the type as its full URI, and in an `|` list, answers the same
    full = "https://smartdatamodels.org/dataModel.Parking/OffStreetParking"
    assert _ids(city, type=full) == sorted(truth)
    assert _ids(city, type=f"{OSP}|Unknown") == sorted(truth)
    assert _ok(city.get("/entities", params={"type": "Unknown"})) == []


def test_count_and_pages(city: httpx.Client, truth: Truth) -> None:
    r = city.get("/entities", params={"type": OSP, "count": "true", "limit": "0"})
    assert _ok(r) == [] and r.headers["ngsild-results-count"] == str(len(truth))
    pages: list[str] = []
    for offset in range(0, len(truth) + 7, 7):
        r = city.get("/entities", params={"type": OSP, "limit": "7", "offset": str(offset),
                                          "count": "true"})
        pages += [e["id"] for e in _ok(r)]
        assert r.headers["ngsild-results-count"] == str(len(truth))
    assert pages == sorted(truth)
    assert len(_ok(city.get("/entities", params={"type": OSP}))) == 20  # the default limit


def test_following_the_next_links_walks_every_entity_once(city: httpx.Client,
                                                          truth: Truth) -> None:
    """``Link: <…>; rel="next"`` (GS CIM 009 pagination) from the first page to the last,
    with and without a count; ``rel="prev"`` leads back a page; the context link stays."""
    import re

    def links(r: httpx.Response) -> dict[str, str]:
        return {rel: url for url, rel in re.findall(r'<([^>]*)>; rel="([^"]+)"',
                                                    r.headers.get("link", ""))}

    for count in ("true", "false"):
        url: str | None = f"/entities?type={OSP}&limit=7&count={count}"
        seen, pages = [], []
        while url is not None:
            r = city.get(url)
            seen += [e["id"] for e in _ok(r)]
            got = links(r)
            assert "http://www.w3.org/ns/json-ld#context" in got  # the context, as before
            pages.append(got)
            url = got.get("next")
        assert seen == sorted(truth), count  # every entity once, in order
        assert "prev" not in pages[0] and all("prev" in pg for pg in pages[1:])
    back = _ok(city.get(pages[2]["prev"]))
    assert [e["id"] for e in back] == sorted(truth)[7:14]


def test_cockpit_xihu_gets_only_xihus_garages(xihu: httpx.Client, truth: Truth) -> None:
    r = xihu.get("/entities", params={"type": OSP, "limit": "1000"})
    got = [e["id"] for e in _ok(r)]
    want = sorted(i for i, t in truth.items() if t["district"] == "xihu")
    assert want and got == want
    scopes = json.loads(r.headers["zhongshu-row-scope"])
    assert {s["dataset"] for s in scopes} == {"parking_westlake.garages",
                                              "parking_qiantang.lots"}
    assert r.headers["zhongshu-purpose"] == "district-operations"
    other = next(i for i, t in truth.items() if t["district"] != "xihu")
    _problem(xihu.get(f"/entities/{other}"), 404, "ResourceNotFound")
    r = xihu.get("/types/OffStreetParking")
    assert _ok(r)["entityCount"] == len(want)


def test_q_equals_a_filter_of_the_owners_rows(city: httpx.Client, truth: Truth) -> None:
    totals = sorted(t["total"] for t in truth.values())
    median = totals[len(totals) // 2]

    def want(keep: Any) -> list[str]:
        return sorted(i for i, t in truth.items() if keep(t))

    cases = [
        (f"totalSpotNumber>{median}", lambda t: t["total"] > median),
        (f"totalSpotNumber<={median}", lambda t: t["total"] <= median),
        (f"totalSpotNumber=={totals[0]},{totals[-1]}",
         lambda t: t["total"] in (totals[0], totals[-1])),
        (f"totalSpotNumber=={median}..{totals[-1]}",
         lambda t: median <= t["total"] <= totals[-1]),
        (f"totalSpotNumber!={median}", lambda t: t["total"] != median),
        ("occupiedSpotNumber", lambda t: t["occupied"] is not None),
        ("!occupiedSpotNumber", lambda t: t["occupied"] is None),
        (f"occupiedSpotNumber>=0;totalSpotNumber>{median}",
         lambda t: t["occupied"] is not None and t["total"] > median),
        (f"(occupiedSpotNumber>=0|totalSpotNumber<{median});totalSpotNumber>1",
         lambda t: (t["occupied"] is not None or t["total"] < median) and t["total"] > 1),
        (f'name=="{next(iter(truth.values()))["name"]}"',
         lambda t: t["name"] == next(iter(truth.values()))["name"]),
        ('name~="^钱塘.*1$"', lambda t: t["name"].startswith("钱塘") and
         t["name"].endswith("1")),
        ("noSuchAttribute>1", lambda t: False),
    ]
    for q, keep in cases:
        assert _ids(city, q=q) == want(keep), q
    some = sorted(truth)[:3]
    assert _ids(city, id=",".join(some)) == some
    assert _ids(city, idPattern=".*westlake-WL00[1-3]$") == [
        i for i in sorted(truth) if i[-5:] in ("WL001", "WL002", "WL003")]
    assert _ids(city, attrs="occupiedSpotNumber") == want(lambda t: t["occupied"] is not None)


def test_geo_queries_equal_brute_force(city: httpx.Client, truth: Truth) -> None:
    pts = {i: (t["lon"], t["lat"]) for i, t in truth.items()}
    center = (sum(p[0] for p in pts.values()) / len(pts),
              sum(p[1] for p in pts.values()) / len(pts))
    far = sorted(_metres(center, p) for p in pts.values())
    for metres in (round(far[len(far) // 4]), round(far[len(far) // 2]), math.ceil(far[-1])):
        near = _ids(city, georel=f"near;maxDistance=={metres}", geometry="Point",
                    coordinates=json.dumps(center))
        assert near == sorted(i for i, p in pts.items() if _metres(center, p) <= metres)
        assert near  # not a vacuous match
        beyond = _ids(city, georel=f"near;minDistance=={metres}", geometry="Point",
                      coordinates=json.dumps(center))
        assert beyond == sorted(i for i, p in pts.items() if _metres(center, p) >= metres)
    # a box around the centre, drawn as a Polygon (and a triangle, half of it)
    lo_x, hi_x = center[0] - 0.03, center[0] + 0.03
    lo_y, hi_y = center[1] - 0.03, center[1] + 0.03
    box = [[[lo_x, lo_y], [hi_x, lo_y], [hi_x, hi_y], [lo_x, hi_y], [lo_x, lo_y]]]
    inside = sorted(i for i, (x, y) in pts.items() if lo_x < x < hi_x and lo_y < y < hi_y)
    assert 0 < len(inside) < len(pts)
    for rel in ("within", "intersects"):
        assert _ids(city, georel=rel, geometry="Polygon", coordinates=json.dumps(box)) == inside
    assert _ids(city, georel="disjoint", geometry="Polygon",
                coordinates=json.dumps(box)) == sorted(set(pts) - set(inside))
    tri = [[[lo_x, lo_y], [hi_x, lo_y], [hi_x, hi_y], [lo_x, lo_y]]]  # below the diagonal
    slope = (hi_y - lo_y) / (hi_x - lo_x)
    below = sorted(i for i, (x, y) in pts.items() if lo_x < x < hi_x and lo_y < y and
                   y < lo_y + slope * (x - lo_x))
    assert _ids(city, georel="within", geometry="Polygon", coordinates=json.dumps(tri)) == below
    one = next(iter(sorted(pts)))
    assert _ids(city, georel="equals", geometry="Point",
                coordinates=json.dumps(list(pts[one]))) == [one]
    body = {"type": "Query", "entities": [{"type": OSP}], "geoQ": {
        "geometry": "Polygon", "coordinates": box, "georel": "within"}}
    r = city.post("/entityOperations/query", json=body, params={"limit": "1000"})
    assert [e["id"] for e in _ok(r)] == inside


def test_one_entity_in_every_form(city: httpx.Client, truth: Truth) -> None:
    i = sorted(t for t in truth if "qiantang" in t)[0]
    t = truth[i]
    e = _ok(city.get(f"/entities/{i}"))
    assert e["id"] == i and e["type"] == OSP
    assert e["totalSpotNumber"] == {"type": "Property", "value": t["total"]}
    assert e["occupiedSpotNumber"]["value"] == t["occupied"]
    assert e["occupiedSpotNumber"]["observedAt"].startswith("20")
    assert e["location"] == {"type": "GeoProperty", "value": {
        "type": "Point", "coordinates": [t["lon"], t["lat"]]}}
    kv = _ok(city.get(f"/entities/{i}", params={"options": "keyValues"}))
    assert kv["totalSpotNumber"] == t["total"] and kv["name"] == t["name"]
    concise = _ok(city.get(f"/entities/{i}", params={"format": "concise"}))
    assert concise["totalSpotNumber"] == t["total"]
    assert concise["occupiedSpotNumber"]["value"] == t["occupied"]
    picked = _ok(city.get(f"/entities/{i}", params={"pick": "name", "options": "keyValues"}))
    assert picked == {"id": i, "type": OSP, "name": t["name"]}
    omitted = _ok(city.get(f"/entities/{i}", params={"omit": "name,location"}))
    assert set(omitted) == {"id", "type", "totalSpotNumber", "occupiedSpotNumber"}
    sys_attrs = _ok(city.get(f"/entities/{i}", params={"options": "sysAttrs"}))
    assert sys_attrs["modifiedAt"] == e["occupiedSpotNumber"]["observedAt"]
    r = city.get(f"/entities/{i}", headers={"Accept": "application/ld+json"})
    ld = _ok(r)
    assert r.headers["content-type"].startswith("application/ld+json") and "link" not in r.headers
    assert ld["@context"].endswith("/ngsi-ld/v1/jsonldContexts/city-context.jsonld")
    r = city.get(f"/entities/{i}", headers={"Accept": "application/geo+json"})
    f = _ok(r)
    assert f["type"] == "Feature" and f["geometry"]["coordinates"] == [t["lon"], t["lat"]]
    assert f["properties"]["type"] == OSP
    r = city.get("/entities", params={"type": OSP, "limit": "3"},
                 headers={"Accept": "application/geo+json"})
    assert _ok(r)["type"] == "FeatureCollection" and len(r.json()["features"]) == 3
    _problem(city.get(f"/entities/{i}", headers={"Accept": "text/plain"}), 406)
    _problem(city.get("/entities/urn:ngsi-ld:OffStreetParking:westlake-NOPE"), 404,
             "ResourceNotFound")
    _problem(city.get("/entities/not-a-uri"), 400, "BadRequestData")


def test_keyvalues_validate_against_the_smart_data_models_schema(city: httpx.Client) -> None:
    common = json.loads((MODELS / "common-schema.json").read_text())
    registry = Registry().with_resource(COMMON, Resource.from_contents(common))
    validator = Draft202012Validator(
        json.loads((MODELS / "OffStreetParking.schema.json").read_text()), registry=registry)
    body = _ok(city.get("/entities", params={"type": OSP, "limit": "1000",
                                              "options": "keyValues"}))
    for e in body:
        errors = [err.message for err in validator.iter_errors(e)]
        assert not errors, (e["id"], errors)


def test_types_attributes_and_contexts(city: httpx.Client, hub: RunningHub, truth: Truth
                                       ) -> None:
    body = _ok(city.get("/types"))
    assert body["type"] == "EntityTypeList" and body["typeList"] == [OSP, "ParkingSpot"]
    details = _ok(city.get("/types", params={"details": "true"}))
    assert {d["typeName"] for d in details} == {OSP, "ParkingSpot"}
    info = _ok(city.get(f"/types/{OSP}"))
    assert info["type"] == "EntityTypeInfo" and info["entityCount"] == len(truth)
    assert {a["attributeName"] for a in info["attributeDetails"]} >= {
        "name", "totalSpotNumber", "location"}
    attrs = _ok(city.get("/attributes"))
    assert attrs["type"] == "AttributeList" and "totalSpotNumber" in attrs["attributeList"]
    one = _ok(city.get("/attributes/status"))
    assert one["typeNames"] == ["ParkingSpot"]
    _problem(city.get("/types/Nope"), 404, "ResourceNotFound")
    # contexts are served by the hub itself, without a token (standards' terms, no data)
    ctx = httpx.get(f"{hub.url}{NGSI}/jsonldContexts/city-context.jsonld").json()
    terms, core = ctx["@context"]
    assert terms[OSP] == "https://smartdatamodels.org/dataModel.Parking/OffStreetParking"
    core_doc = httpx.get(core).json()
    assert core_doc["@context"]["observedAt"]["@id"] == "https://uri.etsi.org/ngsi-ld/observedAt"
    outsider = httpx.get(f"{hub.url}{NGSI}/types",
                         headers={"Authorization": f"Bearer {hub.token('outsider')}"})
    assert _ok(outsider)["typeList"] == []


def test_refusals_are_problem_details(city: httpx.Client, hub: RunningHub) -> None:
    r = city.post("/entities", json={"id": "urn:x", "type": OSP})
    assert _problem(r, 405)["code"] == "method_not_allowed" and r.headers["allow"] == "GET"
    for method in ("PATCH", "PUT", "DELETE"):
        _problem(city.request(method, f"/entities/urn:ngsi-ld:{OSP}:westlake-WL001"), 405)
    _problem(city.post("/subscriptions", json={}), 405)
    assert _problem(city.get("/entities", params={"type": OSP, "foo": "1"}), 400,
                    "InvalidRequest")["detail"].startswith("unknown parameter `foo`")
    _problem(city.get("/entities", params={"type": OSP, "coords": "[1,2]"}), 400)
    _problem(city.get("/entities", params={"type": OSP, "lang": "zh"}), 400)
    _problem(city.get("/entities"), 400, "BadRequestData")  # nothing to find
    for q in ("totalSpotNumber>>3", "totalSpotNumber>\"x\"", "name>3", "a.b==1", "(a==1",
              "totalSpotNumber==1..", "name~=unquoted"):
        _problem(city.get("/entities", params={"type": OSP, "q": q}), 400, "BadRequestData")
    for geo in ({"georel": "near;maxDistance==100", "geometry": "Point",
                 "coordinates": "[200, 1]"},
                {"georel": "overlaps", "geometry": "Point", "coordinates": "[120, 30]"},
                {"georel": "near;maxDistance==100", "geometry": "Polygon",
                 "coordinates": "[[[120,30],[121,30],[121,31],[120,30]]]"},
                {"georel": "within", "geometry": "Polygon", "coordinates": "[[[120,30]]]"},
                {"georel": "within", "geometry": "Point"}):
        _problem(city.get("/entities", params={"type": OSP, **geo}), 400, "BadRequestData")
    _problem(city.post("/entityOperations/query", content=b"nope"), 400, "InvalidRequest")
    r = city.get("/entities", params={"type": OSP}, headers={"Zhongshu-Purpose": "spying"})
    body = _problem(r, 403)
    assert body["code"] == "purpose_not_granted" and "receipt" in body
    assert json.loads(r.headers["zhongshu-receipt"]) == body["receipt"]
    outsider = httpx.get(f"{hub.url}{NGSI}/entities", params={"type": OSP},
                         headers={"Authorization": f"Bearer {hub.token('outsider')}"})
    assert _problem(outsider, 403)["code"] == "forbidden"


def test_each_request_is_one_ledger_entry(xihu: httpx.Client, hub: RunningHub) -> None:
    indices = []
    for _ in range(3):
        r = xihu.get("/entities", params={"type": OSP, "count": "true", "limit": "5"})
        indices.append(json.loads(r.headers["zhongshu-receipt"])["index"])
    assert indices[1] == indices[0] + 1 and indices[2] == indices[1] + 1
    entry = httpx.get(f"{hub.url}/v1/ledger/entries/{indices[-1]}",
                      headers={"Authorization": f"Bearer {hub.token('auditor')}"})
    assert entry.status_code == 200, entry.text
    text = entry.content.decode()
    for word in ("cockpit-xihu", "district-operations", "parking_westlake.garages",
                 "parking_qiantang.lots"):
        assert word in text, word


def test_value_maps_answer_and_filter_in_the_attributes_terms(city: httpx.Client,
                                                              demo_dir: Path) -> None:
    spots = dict(_rows(demo_dir / "data" / "city-parking.sqlite",
                       "SELECT spot_id, occupied FROM spots"))
    want = {f"urn:ngsi-ld:ParkingSpot:onstreet-{s}": "occupied" if o else "free"
            for s, o in spots.items()}
    r = city.get("/entities", params={"type": "ParkingSpot", "limit": "1000",
                                      "options": "keyValues"})
    got = {e["id"]: e["status"] for e in _ok(r)}
    assert got == want and set(got.values()) == {"free", "occupied"}
    for value in ("free", "occupied"):
        r = city.get("/entities", params={"type": "ParkingSpot", "limit": "1000",
                                          "q": f'status=="{value}"'})
        assert sorted(e["id"] for e in _ok(r)) == sorted(i for i, v in want.items()
                                                         if v == value)
    r = city.get("/entities", params={"type": "ParkingSpot", "q": 'status=="parked"'})
    assert _ok(r) == []


HOSTILE = [
    "' OR 1=1 --", "\" OR \"1\"=\"1", "x'); DROP TABLE garages; --", "1; SELECT * FROM "
    "parking_westlake.sessions", "plate", "parking_westlake.sessions", "sessions.plate",
    "read_csv('/etc/passwd')", "getenv('HOME')", "current_setting('x')", "*", "%", ".*",
    "\\", "'", "\"", "\0", "🚗", "a" * 300, "(", ")", "|", ";", "..", ",", "==", "~=",
    "urn:ngsi-ld:OffStreetParking:westlake-WL001' OR '1'='1", "lng", "district", "total_spaces",
    "free", "garage_no", "id", "type", "@context", "1e999", "-0", "NaN", "null", "true",
]


def _hostile_params(rng: random.Random) -> dict[str, str]:
    a, b = rng.choice(HOSTILE), rng.choice(HOSTILE)
    attr = rng.choice(["totalSpotNumber", "name", "occupiedSpotNumber", "areaServed", a])
    op = rng.choice(["==", "!=", ">", "<=", "~=", "!~=", ""])
    value = rng.choice([json.dumps(b), b, "1", f"{b}..{a}", f"1,{b}"])
    choice = rng.randrange(6)
    if choice == 0:
        return {"type": OSP, "q": f"{attr}{op}{value}" if op else attr}
    if choice == 1:
        return {"type": OSP, "id": rng.choice([a, f"urn:ngsi-ld:{OSP}:westlake-{a}",
                                                f"urn:ngsi-ld:{OSP}:qiantang-{b}"])}
    if choice == 2:
        return {"type": OSP, "idPattern": a}
    if choice == 3:
        return {"type": OSP, "attrs": f"{a},{b}"}
    if choice == 4:
        return {"type": rng.choice([a, f"{OSP},{a}", f"{a}|{OSP}"]), "q": f"{attr}"}
    return {"type": OSP, rng.choice(["pick", "omit"]): a, "options": rng.choice(
        ["keyValues", "concise", a])}


def test_hostile_parameters_get_400_or_what_the_caller_may_see(
        xihu: httpx.Client, truth: Truth) -> None:
    allowed = {i for i, t in truth.items() if t["district"] == "xihu"}
    granted_keys = {"id", "type", "name", "totalSpotNumber", "occupiedSpotNumber",
                    "areaServed", "location"}
    rng = random.Random(22)
    statuses: dict[int, int] = {}
    for _ in range(120):
        params = {"limit": "1000", **_hostile_params(rng)}
        r = xihu.get("/entities", params=params)
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        if r.status_code == 400:
            assert r.json()["type"].startswith(ERRORS), (params, r.text)
            continue
        assert r.status_code == 200, (params, r.status_code, r.text)
        for e in r.json():
            assert e["id"] in allowed, params
            assert set(e) <= granted_keys, (params, e)
            assert not any(isinstance(v, dict) and "plate" in str(v) for v in e.values())
    assert statuses.get(200, 0) > 20 and statuses.get(400, 0) > 20, statuses


def test_purpose_choice_and_the_old_facade(own_hub_factory: Any, demo_dir: Path) -> None:
    westlake = (demo_dir / "members" / "parking-westlake.toml").read_text()
    westlake += ('\n[[grants]]\nconsumer = "app-multi"\npurposes = ["planning", "research"]\n'
                 'datasets = ["parking_westlake.garages"]\n')
    hub = own_hub_factory({"parking-westlake": westlake,
                           "app-multi": '[member]\nname = "app-multi"\nkind = "consumer"\n'},
                          scenarios=True)
    auth = {"Authorization": f"Bearer {hub.token('app-multi')}"}
    r = httpx.get(f"{hub.url}{NGSI}/entities", params={"type": OSP}, headers=auth)
    detail = _problem(r, 400)["detail"]
    assert "planning" in detail and "research" in detail and "Zhongshu-Purpose" in detail
    r = httpx.get(f"{hub.url}{NGSI}/entities", params={"type": OSP, "limit": "1000"},
                  headers={**auth, "Zhongshu-Purpose": "research"})
    ids = [e["id"] for e in _ok(r)]
    assert ids and all("westlake" in i for i in ids)
    assert r.headers["zhongshu-not-granted"] == "parking_qiantang.lots"
    # a signed request (RFC 9421) is a caller too; a captured one cannot be replayed
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from zhongshu.client.signing import Message, sign
    from zhongshu.policy.identity import register_key

    key_id, pem = register_key(hub.service.catalog, "app-multi")
    assert pem is not None
    req = httpx.Request("GET", f"{hub.url}{NGSI}/entities",
                        params={"type": OSP, "limit": "1"},
                        headers={"Zhongshu-Purpose": "planning"})
    msg = Message("GET", req.url.path, req.url.query.decode(), req.url.netloc.decode(), {})
    req.headers.update(sign(msg, b"", load_pem_private_key(pem, None),  # type: ignore[arg-type]
                            key_id))
    with httpx.Client() as raw:
        assert [e["id"] for e in _ok(raw.send(req))] == ids[:1]
        again = raw.send(req)
    assert _problem(again, 401)["code"] == "unauthenticated"
    # the parking scenario's old facade answers 308 to the hub's own face
    city = {"Authorization": f"Bearer {hub.token('cockpit-city')}"}
    r = httpx.get(f"{hub.url}/scenarios/parking/ngsi-ld/v1/entities",
                  params={"type": OSP, "limit": "2"}, headers=city)
    assert r.status_code == 308
    assert r.headers["location"] == f"{NGSI}/entities?type={OSP}&limit=2"
    r = httpx.get(f"{hub.url}/scenarios/parking/ngsi-ld/v1/entities",
                  params={"type": OSP, "limit": "2"}, headers=city, follow_redirects=True)
    assert len(_ok(r)) == 2


@pytest.mark.parametrize(("old", "new", "words", "key"), [
    ('id = "urn:ngsi-ld:OffStreetParking:westlake-{garage_no}"',
     'id = "urn:ngsi-ld:OffStreetParking:qiantang-x{garage_no}"', "could make the ids", "id"),
    ('totalSpotNumber = "total_spaces"', 'totalSpotNumber = "no_such_column"',
     "`no_such_column` is not a column", "totalSpotNumber"),
    ('totalSpotNumber = "total_spaces"', 'totalSpotNumber = "name"', "but VARCHAR here",
     "totalSpotNumber"),
    ('totalSpotNumber = "total_spaces"', 'observedAt = "total_spaces"', "not a name", None),
    ('id = "urn:ngsi-ld:OffStreetParking:westlake-{garage_no}"',
     'id = "OffStreetParking-{garage_no}"', "must be a URN", None),
    ('id = "urn:ngsi-ld:OffStreetParking:westlake-{garage_no}"',
     'id = "urn:ngsi-ld:OffStreetParking:westlake-{garage_no}{name}"', "separator", None),
    ('vocabulary = "https://smartdatamodels.org/dataModel.Parking/"\nid = "urn:ngsi-ld:'
     'OffStreetParking:westlake', 'vocabulary = "https://example.org/other/"\nid = "urn:'
     'ngsi-ld:OffStreetParking:westlake', "the same", "vocabulary"),
])
def test_a_bad_mapping_is_a_config_error_with_file_and_line(
        demo_dir: Path, city_tmp: Path, old: str, new: str, words: str, key: str | None
        ) -> None:
    from tests.conftest import copy_demo_city
    from zhongshu.config import load_city
    from zhongshu.errors import ConfigError

    root = copy_demo_city(demo_dir, city_tmp / "city")
    member = root / "members" / "parking-westlake.toml"
    text = member.read_text()
    assert old in text
    member.write_text(text.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_city(root)
    e = info.value
    assert words in e.message and e.path == str(member), e.message
    assert e.line is not None
    line = member.read_text().splitlines()[e.line - 1]
    if key is not None:
        assert line.lstrip().startswith(key), (e.line, line)
    else:
        assert "[datasets.entity" in "\n".join(member.read_text().splitlines()[:e.line]), line


NGSILDCLIENT = Path(os.environ.get("ZHONGSHU_NGSILDCLIENT_VENV", "/tmp/zs-ngsildclient"))


@pytest.mark.slow
@pytest.mark.skipif(not (NGSILDCLIENT / "bin" / "python").is_file(),
                    reason="no ngsildclient virtualenv: make one with scripts/ngsildclient-venv")
def test_ngsildclient_reads_the_face_unchanged(hub: RunningHub, truth: Truth) -> None:
    probe = Path(__file__).with_name("ngsildclient_probe.py")
    run = subprocess.run([str(NGSILDCLIENT / "bin" / "python"), str(probe), "127.0.0.1",
                          str(hub.port), hub.token("cockpit-city"), OSP],
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout)
    assert got["ids"] == sorted(truth) and got["count"] == len(truth)
    first = sorted(truth)[0]
    assert got["first"] == {"id": first, "type": OSP,
                            "totalSpotNumber": truth[first]["total"]}
    assert got["types"] == [OSP, "ParkingSpot"]
