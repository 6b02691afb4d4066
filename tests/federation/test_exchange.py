"""A city hub over a real district hub: remote datasets governed twice, rights composed as
an intersection, raw personal values never leaving the district, both ledgers telling the
story, failures never silent."""

from __future__ import annotations

import json
import socket
import struct
import time

import httpx
import pyarrow as pa
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from tests.federation.conftest import EVENTS, PURPOSE, Federated, restart_district
from zhongshu.cli import app as cli_app
from zhongshu.client import ON_BEHALF_OF
from zhongshu.client.signing import Message, sign
from zhongshu.config import Column, DatasetConfig
from zhongshu.federation import CATALOG_PATH, load_key, public_key_b64
from zhongshu.federation.keys import key_id
from zhongshu.policy.identity import Caller, issue_token, register_key

pytestmark = pytest.mark.slow

ALL = "SELECT * FROM xihu_grid.events ORDER BY event_id"
RAW_PERSONAL = [v for e in EVENTS for v in (e[6], e[7])]
SEALED = [e for e in EVENTS if e[2] == "sealed"]
VISIBLE = [e for e in EVENTS if e[2] != "sealed"]  # the district's row scope for hub-city


def _rows(r: httpx.Response) -> list[list[object]]:
    assert r.status_code == 200, r.text
    rows: list[list[object]] = r.json()["rows"]
    return rows


def test_the_city_catalog_holds_what_the_district_offers_it(federated: Federated) -> None:
    r = httpx.get(f"{federated.city.url}/v1/datasets/xihu_grid.events",
                  headers={"Authorization": f"Bearer {federated.token('cockpit-city')}"})
    assert r.status_code == 200, r.text
    ds = r.json()
    assert ds["owner"] == "hub-xihu"
    cols = [c["name"] for c in ds["columns"]]
    # never granted to the city hub, so never offered, so not a column here at all
    assert "reporter_phone" not in cols
    assert cols == ["event_id", "street", "category", "reported_at", "lon", "lat",
                    "reporter_name"]


def test_the_answer_is_the_district_grant_and_carries_its_receipt(federated: Federated
                                                                   ) -> None:
    r = federated.ask("cockpit-city", "SELECT event_id, street, category FROM "
                      "xihu_grid.events ORDER BY event_id")
    assert _rows(r) == [[e[0], e[1], e[2]] for e in VISIBLE]  # the district's row scope
    body = r.json()
    [up] = body["upstream_receipts"]
    assert up["hub"] == "hub-xihu" and up["ledger"] == "hub.xihu.example"
    assert up["dataset"] == "xihu_grid.events"
    # the district's ledger entry names the city hub, the original caller and the purpose
    district = federated.districts["xihu"].node.ledger
    assert district is not None
    entry = json.loads(district.entry(up["index"]) or b"{}")
    assert (entry["caller"], entry["on_behalf_of"], entry["purpose"]) == \
        ("hub-city", "cockpit-city", PURPOSE)
    assert entry["signature"]  # the city hub's request was signed
    assert entry["result_sha256"] == up["result_sha256"]  # the bytes the city received
    # the city's ledger entry holds the district's receipt
    city = federated.city.node.ledger
    assert city is not None
    mine = json.loads(city.entry(body["receipt"]["index"]) or b"{}")
    assert mine["upstream_receipts"] == [up]
    assert mine["caller"] == "cockpit-city"


def test_a_query_is_pushed_down_to_the_district_not_a_row_scan(federated: Federated) -> None:
    """cockpit-city's access is columns alone: the district receives the aggregate with its
    filter, and answers one row per group."""
    sql = ("SELECT category, count(*) AS n, min(event_id) AS first FROM xihu_grid.events "
           "WHERE street = 'xihu-beishan' GROUP BY category ORDER BY category")
    before = len(federated.sent)
    rows = _rows(federated.ask("cockpit-city", sql))
    expected: dict[str, list[int]] = {}
    for e in VISIBLE:
        if e[1] == "xihu-beishan":
            expected.setdefault(e[2], []).append(e[0])
    assert rows == [[c, len(ids), min(ids)] for c, ids in sorted(expected.items())]
    [asked] = [r for r in federated.sent[before:] if r.url.path == "/v1/query"]
    received = json.loads(asked.content)["sql"].lower()
    assert "group by" in received and "count(" in received and "xihu-beishan" in received
    table = pa.ipc.open_stream(federated.bodies[-1]).read_all()
    assert table.num_rows == len(expected)  # the bytes: no more rows than groups
    # an access with a row scope here is not delegated: the rows come, the scope applies
    # here — but the caller's own filter is pushed, so only rows it wants travel
    before = len(federated.sent)
    rows = _rows(federated.ask("app-narrow", "SELECT category, count(*) FROM xihu_grid.events "
                               "WHERE event_id >= 3 GROUP BY 1"))
    assert rows == [["litter", 1]]  # event 3; the scope (litter) applied here
    [asked] = [r for r in federated.sent[before:] if r.url.path == "/v1/query"]
    sent = json.loads(asked.content)["sql"].lower()
    assert "group by" not in sent and '"event_id" >= 3' in sent
    assert pa.ipc.open_stream(federated.bodies[-1]).read_all().num_rows == \
        len([e for e in VISIBLE if e[0] >= 3])


def test_a_consumer_granted_less_at_the_city_sees_less(federated: Federated) -> None:
    # app-narrow: two columns, litter only — inside the district's grant to the city hub
    rows = _rows(federated.ask("app-narrow", "SELECT * FROM xihu_grid.events ORDER BY 1"))
    assert rows == [[e[0], e[2]] for e in VISIBLE if e[2] == "litter"]
    r = federated.ask("app-narrow", "SELECT street FROM xihu_grid.events")
    assert r.status_code == 403 and r.json()["error"]["code"] == "column_not_granted"


def test_a_consumer_granted_more_sees_no_more_than_the_district_grant(federated: Federated
                                                                      ) -> None:
    # app-wide's city grant names the phone: the district never offered it to the city
    r = federated.ask("app-wide", "SELECT reporter_phone FROM xihu_grid.events")
    assert r.status_code in (400, 403, 404), r.text
    rows = _rows(federated.ask("app-wide", "SELECT event_id, reporter_name FROM "
                               "xihu_grid.events ORDER BY 1"))
    assert [r[0] for r in rows] == [e[0] for e in VISIBLE]  # never the sealed row
    names = [r[1] for r in rows]
    assert all(isinstance(n, str) for n in names)
    assert not set(names) & set(RAW_PERSONAL)  # the district's pseudonym, not the name


def test_no_raw_personal_value_reaches_the_city(federated: Federated) -> None:
    """Whatever the city's consumers write, the bytes the district sends the city hold
    none of its raw personal values nor anything of a row its scope keeps."""
    attempts = [
        ALL,
        "SELECT reporter_name, count(*) FROM xihu_grid.events GROUP BY 1",
        "SELECT * FROM xihu_grid.events WHERE reporter_name = '王小明'",
        "SELECT * FROM xihu_grid.events WHERE category = 'sealed' OR 1 = 1",
        "SELECT event_id FROM xihu_grid.events UNION ALL SELECT event_id FROM "
        "xihu_grid.events",
    ]
    for member in ("cockpit-city", "app-wide", "app-narrow"):
        for sql in attempts:
            federated.ask(member, sql)
    received = b"".join(federated.traffic)
    assert len(federated.traffic) > 5
    for value in RAW_PERSONAL:
        assert value.encode() not in received
    for row in SEALED:
        assert struct.pack("<d", row[4]) not in received  # its longitude, as Arrow holds it
        assert row[3].encode() not in received


def test_a_refusal_of_the_district_is_forwarded_naming_it(federated: Federated) -> None:
    # the city hub asks for a purpose the district did not grant it
    node = federated.city.node
    node.query.grants.add("hub-xihu", {"consumer": "cockpit-city",
                                       "datasets": ["xihu_grid.events"],
                                       "purposes": ["planning"]}, "test")
    node.query.refresh_grants(force=True)
    r = httpx.post(f"{federated.city.url}/v1/query", timeout=30,
                   headers={"Authorization": f"Bearer {federated.token('cockpit-city')}"},
                   json={"sql": "SELECT count(*) FROM xihu_grid.events",
                         "purpose": "planning"})
    assert r.status_code == 403, r.text
    err = r.json()["error"]
    assert err["code"] == "purpose_not_granted" and "hub-xihu" in err["message"]


def test_a_query_mixing_remote_and_local_datasets_is_refused_clearly(federated: Federated
                                                                     ) -> None:
    assert _rows(federated.ask("cockpit-city", "SELECT count(*) FROM civil.districts")) == \
        [[2]]
    r = federated.ask("cockpit-city", "SELECT d.population, count(*) FROM xihu_grid.events e "
                      "JOIN civil.districts d ON d.district = 'xihu' GROUP BY 1")
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "query_invalid"
    assert "civil.districts" in r.json()["error"]["message"]


def test_a_dead_district_is_peer_unavailable_within_a_second(two_districts: Federated
                                                             ) -> None:
    fed = two_districts
    both = ("SELECT 'xihu' AS district, count(*) AS n FROM xihu_grid.events UNION ALL "
            "SELECT 'binjiang', count(*) FROM binjiang_grid.events ORDER BY 1")
    assert _rows(fed.ask("cockpit-city", both)) == [["binjiang", 4], ["xihu", 4]]
    # the union dataset over both districts, with its district column
    union = "SELECT district, count(*) AS n FROM grid.events GROUP BY district ORDER BY 1"
    before = len(fed.sent)
    r = fed.ask("cockpit-city", union)
    assert _rows(r) == [["binjiang", 4], ["xihu", 4]]
    # rolled up: each district was sent its partial aggregate and answered one row a group
    asked = [json.loads(q.content)["sql"].lower() for q in fed.sent[before:]
             if q.url.path == "/v1/query"]
    assert len(asked) == 2 and all("group by" in q and "count(" in q for q in asked)
    assert [pa.ipc.open_stream(b).read_all().num_rows for b in fed.bodies[-2:]] == [1, 1]
    # decomposable aggregates merge exactly: avg as sums over counts, min, max, a filter
    r = fed.ask("cockpit-city", "SELECT category, count(*) AS n, avg(lon) AS lon, "
                "min(event_id) AS lo, max(event_id) AS hi FROM grid.events WHERE event_id > 1 "
                "GROUP BY category HAVING count(*) > 1 ORDER BY n DESC, category")
    rows = [e for e in VISIBLE if e[0] > 1] * 2  # both districts hold the same events
    want = []
    for cat in sorted({e[2] for e in rows}):
        mine = [e for e in rows if e[2] == cat]
        if len(mine) > 1:
            want.append([cat, len(mine), sum(e[4] for e in mine) / len(mine),
                         min(e[0] for e in mine), max(e[0] for e in mine)])
    want.sort(key=lambda w: (-int(str(w[1])), str(w[0])))
    got = _rows(r)
    assert [[g[0], g[1], g[3], g[4]] for g in got] == [[w[0], w[1], w[3], w[4]] for w in want]
    assert all(abs(float(str(g[2])) - float(str(w[2]))) < 1e-9 for g, w in zip(got, want,
                                                                            strict=True))
    assert sorted(u["hub"] for u in r.json()["upstream_receipts"]) == ["hub-binjiang",
                                                                       "hub-xihu"]
    # a filter on the district column is pushed to each part: the other district sends none
    before = len(fed.sent)
    assert _rows(fed.ask("cockpit-city", "SELECT event_id FROM grid.events WHERE "
                         "district = 'xihu' AND category = 'litter' ORDER BY 1")) == [[1], [3]]
    asked = {r.url.host + str(r.url.port): json.loads(r.content)["sql"]
             for r in fed.sent[before:] if r.url.path == "/v1/query"}
    assert len(asked) == 2 and all("'litter'" in q for q in asked.values())
    sizes = sorted(pa.ipc.open_stream(b).read_all().num_rows for b in fed.bodies[-2:])
    assert sizes == [0, 2]
    fed.districts["binjiang"].stop()  # its port now refuses connections
    for _ in range(3):  # before and after its breaker opens
        t0 = time.monotonic()
        r = fed.ask("cockpit-city", both)
        took = time.monotonic() - t0
        assert r.status_code == 503, r.text
        err = r.json()["error"]
        assert err["code"] == "peer_unavailable" and "hub-binjiang" in err["message"]
        assert took <= 1.0, took
    r = fed.ask("cockpit-city", both, allow_partial=True)
    assert _rows(r) == [["binjiang", 0], ["xihu", 4]]
    [missing] = r.json()["partial"]
    assert missing["hub"] == "hub-binjiang" and missing["code"] == "peer_unavailable"
    assert [u["hub"] for u in r.json()["upstream_receipts"]] == ["hub-xihu"]
    r = fed.ask("cockpit-city", union)
    assert r.status_code == 503 and "hub-binjiang" in r.json()["error"]["message"]
    r = fed.ask("cockpit-city", union, allow_partial=True)
    assert _rows(r) == [["xihu", 4]]
    assert [p["hub"] for p in r.json()["partial"]] == ["hub-binjiang"]

    # a district that hangs (accepts, never answers): each query costs at most its answer
    # time limit until the breaker opens, then nothing
    with socket.socket() as hang:
        hang.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hang.bind(("127.0.0.1", fed.districts["binjiang"].port))
        hang.listen(16)
        fed.sync.refresh()  # its catalog cannot be fetched: the breaker counts that too
        took = []
        for _ in range(4):
            t0 = time.monotonic()
            r = fed.ask("cockpit-city", both)
            took.append(time.monotonic() - t0)
            assert r.status_code == 503 and "hub-binjiang" in r.json()["error"]["message"]
        assert max(took) <= 4.5, took  # the answer time limit (3 s), the query's own work
        assert took[-1] <= 1.0, took  # once open, the breaker answers at once

    # it comes back: full answers again within one catalog refresh, the city never restarted
    restart_district(fed, "binjiang")
    fed.sync.refresh()
    assert _rows(fed.ask("cockpit-city", both)) == [["binjiang", 4], ["xihu", 4]]
    assert _rows(fed.ask("cockpit-city", union)) == [["binjiang", 4], ["xihu", 4]]


def _signed(key: Ed25519PrivateKey, url: str, path: str, body: bytes = b"",
            behalf: str | None = None, cover: bool = True) -> httpx.Response:
    """A request to ``url`` signed as ``hub-city`` with ``key``; ``behalf`` named in the
    header, covered by the signature or not."""
    netloc = url.removeprefix("http://")
    headers = {"zhongshu-on-behalf-of": behalf} if behalf and cover else {}
    msg = Message("POST" if body else "GET", path, "", netloc, headers)
    pub = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    sig = sign(msg, body, key, key_id("hub-city", pub), cover=tuple(headers))
    if behalf:
        sig[ON_BEHALF_OF] = behalf
    if body:
        sig["content-type"] = "application/json"
        return httpx.post(url + path, content=body, headers=sig, timeout=10)
    return httpx.get(url + path, headers=sig, timeout=10)


def test_the_district_speaks_only_to_its_pinned_peer(federated: Federated) -> None:
    district = federated.districts["xihu"]
    city_key = load_key(federated.roots["city"] / "state" / "federation.key")
    assert _signed(city_key, district.url, CATALOG_PATH).status_code == 200
    # another key claiming to be the city hub
    other = Ed25519PrivateKey.generate()
    r = _signed(other, district.url, CATALOG_PATH)
    assert r.status_code == 401, r.text
    # even registered for hub-city at the district (a key since replaced in city.toml): only
    # the key [[federation.peers]] pins verifies a peer's request
    register_key(district.node.catalog, "hub-city", other.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    r = _signed(other, district.url, CATALOG_PATH)
    assert r.status_code == 401, r.text
    # a member of the district that is no peer hub
    token = issue_token(district.node.catalog, "xihu-grid")
    r = httpx.get(district.url + CATALOG_PATH, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    # a hub member cannot use a bearer token at all
    token = issue_token(district.node.catalog, "hub-city")
    r = httpx.get(district.url + CATALOG_PATH, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


def test_on_behalf_of_a_peer_is_bound_by_its_signature(federated: Federated) -> None:
    district = federated.districts["xihu"]
    city_key = load_key(federated.roots["city"] / "state" / "federation.key")
    body = json.dumps({"sql": "SELECT count(*) FROM xihu_grid.events",
                       "purpose": PURPOSE}).encode()
    ok = _signed(city_key, district.url, "/v1/query", body, behalf="cockpit-city")
    assert ok.status_code == 200, ok.text
    r = _signed(city_key, district.url, "/v1/query", body, behalf="cockpit-city", cover=False)
    assert r.status_code == 403 and r.json()["error"]["code"] == "on_behalf_refused"
    r = _signed(city_key, district.url, "/v1/query", body, behalf="Robert'); DROP")
    assert r.status_code == 403 and r.json()["error"]["code"] == "on_behalf_refused"


def test_a_peer_cannot_shadow_a_local_dataset(federated: Federated) -> None:
    catalog = federated.city.node.catalog
    mine = catalog.datasets["civil.districts"]
    theirs = [d.config for d in catalog.datasets.values() if d.owner == "hub-xihu"]
    fake = DatasetConfig(name="civil.districts", source="hub-xihu", table="civil.districts",
                         columns=[Column(name="district", type="VARCHAR")])
    assert catalog.set_remote("hub-xihu", [*theirs, fake]) == ["civil.districts"]
    assert catalog.datasets["civil.districts"] is mine
    assert [d.config for d in catalog.datasets.values() if d.owner == "hub-xihu"] == theirs


def test_the_district_grants_change_at_the_city_within_one_refresh(one_district: Federated
                                                                   ) -> None:
    fed = one_district
    district = fed.districts["xihu"].node
    sql = "SELECT count(*) FROM xihu_grid.events"
    # a grant added at the district (another purpose) is offered at the next refresh
    gid = district.query.grants.add("xihu-grid", {
        "consumer": "hub-city", "datasets": ["xihu_grid.events"], "purposes": ["planning"],
        "columns": ["event_id", "category"]}, "test")
    district.query.refresh_grants(force=True)
    fed.sync.refresh()
    offer = fed.sync.offer("hub-xihu")
    assert offer is not None
    assert offer.datasets[0].purposes == ("city-operations", "planning")
    district.query.grants.revoke("xihu-grid", gid, "test")
    district.query.refresh_grants(force=True)
    fed.sync.refresh()
    offer = fed.sync.offer("hub-xihu")
    assert offer is not None and offer.datasets[0].purposes == ("city-operations",)
    assert _rows(fed.ask("cockpit-city", sql)) == [[len(VISIBLE)]]
    # the district revokes its grant to the city hub: the city's query is 403, naming it —
    # before the city has refreshed (the district refuses) and after (it no longer offers)
    member = fed.roots["xihu"] / "members" / "xihu-grid.toml"
    member.write_text(member.read_text().split("[[grants]]")[0])
    restart_district(fed, "xihu")
    for refreshed in (False, True):
        if refreshed:
            fed.sync.refresh()
        r = fed.ask("cockpit-city", sql)
        assert r.status_code == 403, (refreshed, r.text)
        assert "hub-xihu" in r.json()["error"]["message"]


def test_the_cli_prints_the_key_and_each_peer_state(federated: Federated) -> None:
    runner = CliRunner()
    root = federated.roots["city"]
    r = runner.invoke(cli_app, ["federation", "key", "--dir", str(root)])
    assert r.exit_code == 0, r.output
    want = public_key_b64(load_key(root / "state" / "federation.key"))
    assert f"public_key  {want}" in r.output and "hub-city" in r.output
    r = runner.invoke(cli_app, ["federation", "peers", "--dir", str(root)])
    assert r.exit_code == 0, r.output
    assert "hub-xihu  ok  xihu_grid.events" in r.output


def test_a_remote_query_is_described_without_asking_the_district(federated: Federated
                                                                  ) -> None:
    """The wire endpoint describes a statement before it runs: learnt over no rows."""
    service = federated.city.node.query
    before = len(federated.sent)
    schema = service.describe(Caller(service.catalog.members["cockpit-city"]),
                              "SELECT category, count(*) AS n, avg(lon) AS lon FROM "
                              "grid.events GROUP BY 1", PURPOSE)
    assert schema.names == ["category", "n", "lon"]
    assert len(federated.sent) == before


def test_the_district_reads_city_data_scoped_to_it(federated: Federated) -> None:
    """Both directions: the city grants the district hub its own row of a city dataset;
    the district's cockpit reads it through the district hub, which asks the city."""
    district = federated.districts["xihu"]
    fed = district.node.federation
    assert fed is not None
    fed[1].refresh()
    token = issue_token(district.node.catalog, "xihu-cockpit")
    r = httpx.post(f"{district.url}/v1/query", timeout=30,
                   headers={"Authorization": f"Bearer {token}"},
                   json={"sql": "SELECT district, population FROM civil.districts",
                         "purpose": "district-operations"})
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [["xihu", 1]]  # the city's row scope: its own row only
    assert [u["hub"] for u in r.json()["upstream_receipts"]] == ["hub-city"]
