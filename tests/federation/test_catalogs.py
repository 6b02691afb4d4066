"""A peer's catalog is data, never instructions: signed by the key pinned in city.toml,
for this hub, believable in time, every name a plain name in the peer's namespace — or
refused whole. And what a peer answers is checked the same way (``federation.peers``)."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import httpx
import pyarrow as pa
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from zhongshu.config import FederationSettings, PeerConfig
from zhongshu.errors import Forbidden, PeerUnavailable
from zhongshu.federation import (
    CATALOG_PATH,
    CatalogSync,
    Peer,
    Peers,
    public_key_b64,
    sign_catalog,
    verify_catalog,
)

KEY = Ed25519PrivateKey.generate()
NOW = 1_800_000_000


def catalog(**change: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": 1, "hub": "hub-xihu", "for": "hub-city", "issued_at": NOW - 10,
        "expires_at": NOW + 590,
        "datasets": [{"name": "xihu_grid.events", "title": "events", "description": "",
                      "purposes": ["city-operations"], "area_column": None,
                      "columns": [{"name": "event_id", "type": "BIGINT",
                                   "classification": "public", "description": ""},
                                  {"name": "street", "type": "VARCHAR",
                                   "classification": "internal", "description": ""}]}]}
    base.update(change)
    return base


def verify(doc: Any, now: float = NOW) -> Any:
    return verify_catalog(doc, KEY.public_key(), hub="hub-xihu", for_="hub-city",
                          namespace="xihu", now=now)


def with_dataset(**change: Any) -> dict[str, Any]:
    c = catalog()
    c["datasets"][0].update(change)
    return c


def with_column(**change: Any) -> dict[str, Any]:
    c = catalog()
    c["datasets"][0]["columns"][0].update(change)
    return c


def test_a_good_catalog_becomes_remote_dataset_configs() -> None:
    offer = verify(sign_catalog(catalog(), KEY))
    [d] = offer.datasets
    assert d.config.name == "xihu_grid.events" and d.config.source == "hub-xihu"
    assert [c.name for c in d.config.columns] == ["event_id", "street"]
    assert d.purposes == ("city-operations",)
    assert not offer.stale(NOW) and offer.stale(NOW + 600)
    assert d.config.listed
    [hidden] = verify(sign_catalog(with_dataset(listed=False), KEY)).datasets
    assert not hidden.config.listed  # unlisted at the district, unlisted here


@pytest.mark.parametrize("doc", [
    catalog(hub="hub-binjiang"),  # another hub's catalog, replayed
    catalog(**{"for": "hub-other"}),  # made for another peer
    catalog(version=2),
    catalog(issued_at=NOW + 3600, expires_at=NOW + 4000),  # from the future
    catalog(expires_at=NOW + 10 * 86_400),  # valid for ever, more or less
    catalog(expires_at=NOW - 20),  # expires before it is issued
    catalog(issued_at="yesterday"),
    catalog(datasets="everything"),
    with_dataset(name="civil.districts"),  # a local dataset's name: outside its namespace
    with_dataset(name="traffic.passages"),
    with_dataset(name="xihu_grid.events; DROP TABLE x"),  # SQL through a name
    with_dataset(name='xihu_grid."events"'),
    with_dataset(name="xihu_grid.events", purposes=[]),
    with_dataset(purposes=["city operations'--"]),
    with_dataset(columns=[]),
    with_dataset(area_column="nowhere"),
    with_dataset(listed="yes"),
    with_column(name='event_id" FROM secret --'),
    with_column(name="EventId"),
    with_column(type="VARCHAR); ATTACH '/etc/passwd' AS p; SELECT (1"),
    with_column(type="INTEGER[] ) UNION SELECT 1"),
    with_column(classification="public-ish"),
    with_column(description=["not", "text"]),
    with_dataset(columns=[{"name": "a", "type": "BIGINT", "classification": "public"},
                          {"name": "a", "type": "BIGINT", "classification": "public"}]),
    catalog(datasets=[catalog()["datasets"][0], catalog()["datasets"][0]]),  # twice
])
def test_a_lying_catalog_is_refused_whole(doc: dict[str, Any]) -> None:
    with pytest.raises(PeerUnavailable) as e:
        verify(sign_catalog(doc, KEY))
    assert e.value.hub == "hub-xihu" and e.value.code == "peer_unavailable"


def test_a_catalog_signed_by_another_key_or_altered_is_refused() -> None:
    with pytest.raises(PeerUnavailable, match="not signed by its key"):
        verify(sign_catalog(catalog(), Ed25519PrivateKey.generate()))
    doc = sign_catalog(catalog(), KEY)
    doc["catalog"]["datasets"][0]["columns"].append(
        {"name": "reporter_phone", "type": "VARCHAR", "classification": "public"})
    with pytest.raises(PeerUnavailable, match="not signed by its key"):
        verify(doc)
    for broken in ({}, {"catalog": catalog()}, {"catalog": catalog(), "signature": "!!"},
                   "a string", None):
        with pytest.raises(PeerUnavailable):
            verify(broken)


# --- the sync and the peer, over a stub peer ------------------------------------------------

SETTINGS = FederationSettings(
    member="hub-city", timeout_s=0.2, answer_timeout_s=0.5, breaker_failures=2,
    breaker_open_s=60,
    peers=[PeerConfig(name="hub-xihu", url="http://xihu.test",
                      public_key=public_key_b64(KEY))])


class Stub:
    """A peer answering whatever the test sets, counting requests."""

    def __init__(self) -> None:
        self.doc: Any = sign_catalog(catalog(issued_at=int(time.time()) - 1,
                                             expires_at=int(time.time()) + 600), KEY)
        self.down = False
        self.query: httpx.Response | None = None
        self.asked: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(request)
        if self.down:
            raise httpx.ConnectError("refused", request=request)
        if request.url.path == CATALOG_PATH:
            return httpx.Response(200, json=self.doc)
        assert self.query is not None
        return self.query


def peers(stub: Stub) -> Peers:
    return Peers(SETTINGS, Ed25519PrivateKey.generate(), lambda p: httpx.MockTransport(stub))


def test_the_last_valid_catalog_is_kept_then_marked_stale() -> None:
    stub = Stub()
    sync = CatalogSync(peers(stub))
    changes: list[str] = []
    sync.on_change = lambda peer, offer: changes.append(peer)
    sync.refresh()
    assert sync.check_fresh("hub-xihu").datasets and changes == ["hub-xihu"]
    sync.refresh()
    assert changes == ["hub-xihu"]  # the same datasets: no change to apply
    stub.down = True
    sync.refresh()  # unreachable: the last valid catalog stays in force
    assert sync.check_fresh("hub-xihu").datasets
    assert sync.report()["hub-xihu"].startswith("degraded")
    offer = sync.offer("hub-xihu")
    assert offer is not None
    with pytest.raises(PeerUnavailable, match="stale catalog"):
        sync.state["hub-xihu"].offer = type(offer)(offer.hub, offer.issued_at,
                                                   int(time.time()) - 1, offer.datasets)
        sync.check_fresh("hub-xihu")
    assert sync.report()["hub-xihu"] == "stale"


def test_a_catalog_signed_by_another_key_never_replaces_the_valid_one() -> None:
    stub = Stub()
    sync = CatalogSync(peers(stub))
    sync.refresh()
    good = sync.offer("hub-xihu")
    evil = copy.deepcopy(stub.doc["catalog"])
    evil["issued_at"] += 5
    evil["datasets"] = []
    stub.doc = sign_catalog(evil, Ed25519PrivateKey.generate())
    sync.refresh()
    assert sync.offer("hub-xihu") is good
    assert "not signed" in sync.state["hub-xihu"].error
    # an older catalog, even well signed, is a replay
    old = copy.deepcopy(good and stub.doc["catalog"])
    old["issued_at"] -= 100
    stub.doc = sign_catalog(old, KEY)
    sync.refresh()
    assert sync.offer("hub-xihu") is good


def _arrow(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


RECEIPT = json.dumps({"ledger": "hub.xihu", "index": 3, "entry_hash": "ab" * 32})


def _peer(stub: Stub) -> Peer:
    return peers(stub)["hub-xihu"]


def test_a_peer_answer_is_checked_as_data() -> None:
    stub = Stub()
    peer = _peer(stub)
    good = _arrow(pa.table({"event_id": [1, 2]}))
    stub.query = httpx.Response(200, content=good, headers={"Zhongshu-Receipt": RECEIPT})
    answer = peer.query("SELECT 1", "p", "cockpit-city", ["event_id"], 5)
    assert answer.table.num_rows == 2 and answer.receipt["hub"] == "hub-xihu"
    # the caller it acts for travels in a header the signature covers
    sent = stub.asked[-1]
    assert sent.headers["Zhongshu-On-Behalf-Of"] == "cockpit-city"
    assert '"zhongshu-on-behalf-of"' in sent.headers["Signature-Input"]
    lies = [
        httpx.Response(200, content=_arrow(pa.table({"event_id": [1], "phone": ["138"]})),
                       headers={"Zhongshu-Receipt": RECEIPT}),  # more columns than asked
        httpx.Response(200, content=good),  # no receipt
        httpx.Response(200, content=good, headers={"Zhongshu-Receipt": '{"index": -1}'}),
        httpx.Response(200, content=b"not arrow", headers={"Zhongshu-Receipt": RECEIPT}),
    ]
    for lie in lies:
        stub.query = lie
        with pytest.raises(PeerUnavailable) as e:
            peer.query("SELECT 1", "p", None, ["event_id"], 5)
        assert e.value.hub == "hub-xihu"


def test_refusals_are_forwarded_and_failures_open_the_breaker() -> None:
    stub = Stub()
    peer = _peer(stub)
    stub.query = httpx.Response(403, json={"error": {"code": "forbidden", "message": "no"}})
    with pytest.raises(Forbidden, match="peer hub `hub-xihu` refused: no"):
        peer.query("SELECT 1", "p", None, ["event_id"], 5)
    stub.query = httpx.Response(500, json={"error": {"code": "internal", "message": "x"}})
    for _ in range(2):
        with pytest.raises(PeerUnavailable):
            peer.query("SELECT 1", "p", None, ["event_id"], 5)
    asked = len(stub.asked)
    with pytest.raises(PeerUnavailable, match="circuit open"):
        peer.query("SELECT 1", "p", None, ["event_id"], 5)
    assert len(stub.asked) == asked  # open: nothing was sent
    CatalogSync(peers(stub)).refresh()  # another Peers' probe does not close this one
    assert peer.breaker.is_open()
    peer.catalog()  # a catalog refresh is the probe: it goes out and closes the breaker
    assert not peer.breaker.is_open()


def test_a_city_catalog_keeps_its_names_but_names_no_district_dataset() -> None:
    c = with_dataset(name="traffic.passages")
    offer = verify_catalog(sign_catalog(c, KEY), KEY.public_key(), hub="hub-xihu",
                           for_="hub-city", namespace="", now=NOW)
    assert offer.datasets[0].config.name == "traffic.passages"
    settings = FederationSettings(member="hub-xihu", peers=[
        PeerConfig(name="hub-city", url="http://city.test", public_key=public_key_b64(KEY),
                   role="city"),
        PeerConfig(name="hub-binjiang", url="http://b.test",
                   public_key=public_key_b64(Ed25519PrivateKey.generate()))])
    stub = Stub()
    doc = copy.deepcopy(stub.doc["catalog"])
    doc["hub"], doc["for"] = "hub-city", "hub-xihu"
    doc["datasets"][0]["name"] = "binjiang_grid.events"  # another peer's namespace
    stub.doc = sign_catalog(doc, KEY)
    sync = CatalogSync(Peers(settings, Ed25519PrivateKey.generate(),
                             lambda p: httpx.MockTransport(stub)))
    sync.refresh("hub-city")
    assert sync.offer("hub-city") is None
    assert "another peer's" in sync.state["hub-city"].error
