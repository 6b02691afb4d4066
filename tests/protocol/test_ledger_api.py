"""The ledger through the protocol: receipts on answers and refusals, who may read entries,
proofs that verify with nothing but the public checkpoint and the log key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import RunningHub
from zhongshu.ledger import merkle, note
from zhongshu.ledger.verify import check_receipt

P = "city-operations"
SQL = "SELECT district, count(*) AS n FROM traffic.checkpoints GROUP BY 1 ORDER BY 1"


def _client(hub: RunningHub, member: str) -> httpx.Client:
    return httpx.Client(base_url=hub.url, timeout=30,
                        headers={"Authorization": f"Bearer {hub.token(member)}"})


@pytest.fixture(scope="module")
def city(hub: RunningHub) -> Iterator[httpx.Client]:
    with _client(hub, "cockpit-city") as c:
        yield c


def _bundle(c: httpx.Client, index: int) -> dict[str, Any]:
    r = c.get(f"/v1/ledger/receipts/{index}")
    assert r.status_code == 200, r.text
    return r.json()


def test_an_answer_carries_a_receipt_that_checks_offline(city: httpx.Client) -> None:
    r = city.post("/v1/query", json={"sql": SQL, "purpose": P})
    body = r.json()
    receipt = body["receipt"]
    assert receipt["ledger"] and receipt["index"] >= 0 and len(receipt["entry_hash"]) == 64
    bundle = _bundle(city, receipt["index"])
    assert bundle["receipt"] == receipt
    # the rows as sent, re-canonicalized by the standard library (no floats here): RFC 8785
    rows = json.dumps(body["rows"], separators=(",", ":"), ensure_ascii=False).encode()
    report = check_receipt(bundle, log_key=city.get("/v1/ledger/key").json()["log"],
                           answer=rows)
    assert report.ok, report.problems
    fields = json.loads(bundle["entry"])
    assert fields["kind"] == "exchange" and fields["caller"] == "cockpit-city"
    assert fields["datasets"] == ["traffic.checkpoints"]
    assert fields["columns"] == {"traffic.checkpoints": ["district"]}
    assert fields["rows"] == len(body["rows"]) and fields["purpose"] == P
    canon = json.dumps({"format": "json", "limit": None, "purpose": P, "sql": SQL},
                       separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    assert fields["query_sha256"] == hashlib.sha256(canon.encode()).hexdigest()
    assert "SELECT" not in bundle["entry"]
    # a different answer does not match the entry
    assert not check_receipt(bundle, answer=rows.replace(b"1", b"2")).ok


def test_an_arrow_answer_records_the_stream_it_sent(city: httpx.Client) -> None:
    r = city.post("/v1/query", json={"sql": SQL, "purpose": P, "format": "arrow"})
    receipt = json.loads(r.headers["zhongshu-receipt"])
    bundle = _bundle(city, receipt["index"])
    assert json.loads(bundle["entry"])["result_sha256"] == hashlib.sha256(r.content).hexdigest()
    assert check_receipt(bundle, answer=r.content).ok


def test_refusals_are_recorded_anonymous_requests_are_not(city: httpx.Client,
                                                          hub: RunningHub) -> None:
    r = city.post("/v1/query", json={"sql": "SELECT plate FROM traffic.passages",
                                     "purpose": P})
    assert r.status_code == 403
    receipt = r.json()["receipt"]
    fields = json.loads(_bundle(city, receipt["index"])["entry"])
    assert fields["kind"] == "refusal" and fields["outcome"] == "column_not_granted"
    assert fields["endpoint"] == "POST /v1/query" and "plate" not in json.dumps(fields)
    before = city.get("/v1/ledger/checkpoint", params={"format": "json"}).json()["size"]
    for _ in range(5):
        assert httpx.post(f"{hub.url}/v1/query", json={"sql": SQL, "purpose": P}).status_code \
            == 401
    r = city.post("/v1/query", json={"sql": SQL, "purpose": P})
    assert r.json()["receipt"]["index"] >= before  # …and no anonymous entries were made
    bad = city.post("/v1/query", json={"sql": "SELEC 1", "purpose": P})
    assert bad.status_code == 400 and bad.json()["receipt"]["index"] > r.json()["receipt"][
        "index"]


def test_entries_only_to_caller_owners_and_auditors(city: httpx.Client, hub: RunningHub) -> None:
    idx = city.post("/v1/query", json={"sql": SQL, "purpose": P}).json()["receipt"]["index"]
    assert city.get(f"/v1/ledger/entries/{idx}").status_code == 200
    for member, status in [("traffic-police", 200), ("auditor", 200), ("app-parking", 404),
                           ("parking-westlake", 404)]:
        with _client(hub, member) as c:
            assert c.get(f"/v1/ledger/entries/{idx}").status_code == status, member
            assert c.get(f"/v1/ledger/receipts/{idx}").status_code == status, member
    with _client(hub, "app-parking") as c:
        missing = c.get("/v1/ledger/entries/99999999")
        hidden = c.get(f"/v1/ledger/entries/{idx}")
        assert missing.json()["error"]["message"].replace("99999999", str(idx)) == \
            hidden.json()["error"]["message"]
    assert httpx.get(f"{hub.url}/v1/ledger/entries/{idx}").status_code == 401


def test_public_checkpoint_and_proofs_verify(city: httpx.Client, hub: RunningHub) -> None:
    first = city.post("/v1/query", json={"sql": SQL, "purpose": P}).json()["receipt"]
    key = note.Verifier.parse(httpx.get(f"{hub.url}/v1/ledger/key").json()["log"])
    c1 = note.parse_checkpoint(httpx.get(f"{hub.url}/v1/ledger/checkpoint").text)
    last = [city.post("/v1/query", json={"sql": SQL, "purpose": P}).json()["receipt"]["index"]
            for _ in range(3)][-1]
    hub.wait_checkpoint(last + 1)  # signed by the publisher thread, about once a second
    c2 = note.parse_checkpoint(httpx.get(f"{hub.url}/v1/ledger/checkpoint").text)
    assert c1.signed_by(key) and c2.signed_by(key) and c2.size > c1.size
    p = httpx.get(f"{hub.url}/v1/ledger/proof/consistency",
                  params={"from": c1.size, "to": c2.size}).json()
    assert merkle.verify_consistency(c1.size, c2.size, c1.root, c2.root,
                                     [bytes.fromhex(h) for h in p["hashes"]])
    p = httpx.get(f"{hub.url}/v1/ledger/proof/inclusion",
                  params={"index": first["index"], "size": c2.size}).json()
    assert merkle.verify_inclusion(first["index"], c2.size, bytes.fromhex(first["entry_hash"]),
                                   [bytes.fromhex(h) for h in p["hashes"]], c2.root)
    assert httpx.get(f"{hub.url}/v1/ledger/proof/inclusion",
                     params={"index": 5, "size": 10**9}).status_code == 400
    assert httpx.get(f"{hub.url}/v1/ledger/tile/0/x999/999").status_code == 404


def test_owner_usage_report(hub: RunningHub, city: httpx.Client) -> None:
    # A usage report is read through the latest checkpoint, which the publisher thread moves
    # on about once a second; the session hub's log also grows with every other exchange.
    # So: wait until a checkpoint covers this test's own two exchanges (a page of one then
    # has a next one), and compare the pages only below the fixed bound of the checkpoint
    # the whole report was read through — entries signed in later are beyond it.
    mine = [city.post("/v1/query", json={"sql": SQL, "purpose": P}).json()["receipt"]["index"]
            for _ in range(2)]
    hub.wait_checkpoint(max(mine) + 1)
    usage = {"dataset": "traffic.checkpoints", "limit": 10_000}
    with _client(hub, "traffic-police") as owner:
        data = owner.get("/v1/ledger/usage", params=usage).json()
        bound = note.parse_checkpoint(data["checkpoint"]).size
        indexes = [e["index"] for e in data["entries"]]
        assert data["next"] is None and set(mine) <= set(indexes)
        assert all(i < bound for i in indexes)
        assert all("traffic.checkpoints" in e["entry"]["datasets"] for e in data["entries"])
        later = owner.get("/v1/ledger/usage", params={"dataset": "traffic.checkpoints",
                                                       "since": "2999-01-01T00:00:00Z"})
        assert later.json()["entries"] == []
        since = data["entries"][-1]["entry"]["time"]
        recent = owner.get("/v1/ledger/usage", params={"dataset": "traffic.checkpoints",
                                                        "since": since}).json()["entries"]
        assert recent and all(e["entry"]["time"] >= since for e in recent)
        page = owner.get("/v1/ledger/usage", params={"dataset": "traffic.checkpoints",
                                                      "limit": 1}).json()
        assert [e["index"] for e in page["entries"]] == indexes[:1] == [page["next"]]
        rest = owner.get("/v1/ledger/usage", params={**usage, "after": page["next"]}).json()
        assert rest["next"] is None
        assert [e["index"] for e in page["entries"] + rest["entries"]
                if e["index"] < bound] == indexes
    with _client(hub, "app-parking") as other:
        assert other.get("/v1/ledger/usage",
                         params={"dataset": "traffic.checkpoints"}).status_code == 404


def test_a_grant_change_is_on_the_ledger(hub: RunningHub) -> None:
    with _client(hub, "traffic-police") as owner:
        r = owner.post("/v1/grants", json={"consumer": "app-parking",
                                           "datasets": ["traffic.segments"],
                                           "purposes": ["parking-guidance"]})
        assert r.status_code == 201, r.text
        gid = r.json()["id"]
        assert owner.delete(f"/v1/grants/{gid}").status_code == 200
        hub.wait_checkpoint()  # one that covers both changes (recorded durably by now)
        data = owner.get("/v1/ledger/usage", params={"dataset": "traffic.segments"}).json()
    changes = [e["entry"] for e in data["entries"] if e["entry"]["kind"] == "change"
               and e["entry"]["target"]["subject"] == gid]
    assert [c["action"] for c in changes] == ["grant.add", "grant.revoke"]
    assert all(c["caller"] == "member:traffic-police" for c in changes)
    assert changes[0]["target"]["consumer"] == "app-parking"
