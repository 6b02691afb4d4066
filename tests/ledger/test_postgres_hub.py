"""Two hubs of one city on one PostgreSQL store (two replicas, each with its sequencer
process, in this test's process): one log with indices from both, signed by the one that
holds the sequencer's lease, served and proved by either; tokens, grants and their
revocations made through one replica hold on the other within a second."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningHub, readable_dir
from tests.stores.pg import fresh_database
from zhongshu.config import StoreSettings, load_city
from zhongshu.ledger import merkle, note
from zhongshu.ledger.postgres import PostgresLedgerStore
from zhongshu.ledger.verify import verify_store
from zhongshu.node import Node
from zhongshu.policy.identity import issue_token, revoke_tokens, token_hash

pytestmark = [pytest.mark.server, pytest.mark.slow]
P = "city-operations"
SQL = "SELECT district, count(*) AS n FROM traffic.checkpoints GROUP BY 1 ORDER BY 1"
SEGMENTS = "SELECT count(*) AS n FROM traffic.segments"


@pytest.fixture(scope="module")
def replicas(demo_dir: Path) -> Iterator[tuple[RunningHub, RunningHub, str]]:
    """Two replicas, shared by this module's tests (starting them is most of its time)."""
    with readable_dir("zs-replicas-") as tmp, fresh_database() as url:
        root = tmp / "city"
        shutil.copytree(demo_dir, root, ignore=shutil.ignore_patterns("state", "ledger.pin",
                                                                      "tokens"))
        city = load_city(root).model_copy(update={"store": StoreSettings(url=url)})
        nodes = [Node.open(city, serve=True, monitor=False) for _ in range(2)]
        hubs = [RunningHub(n, root) for n in nodes]
        try:
            yield hubs[0], hubs[1], url
        finally:
            for h in hubs:
                h.stop()
            for n in nodes:
                n.close()


def _client(hub: RunningHub, member: str) -> httpx.Client:
    return httpx.Client(base_url=hub.url, timeout=30,
                        headers={"Authorization": f"Bearer {hub.token(member)}"})


def _until(check: object, timeout_s: float) -> float:
    """Seconds until ``check()`` is true (fails after ``timeout_s``)."""
    t0 = time.monotonic()
    while not check():  # type: ignore[operator]
        assert time.monotonic() - t0 < timeout_s, "not within the time"
        time.sleep(0.02)
    return time.monotonic() - t0


def test_two_replicas_one_log_one_signer(replicas: tuple[RunningHub, RunningHub, str]) -> None:
    a, b, url = replicas
    assert a.node.ledger is not None and b.node.ledger is not None
    with _client(a, "cockpit-city") as ca, _client(b, "cockpit-city") as cb:
        got = [c.post("/v1/query", json={"sql": SQL, "purpose": P}) for c in (ca, cb) * 5]
        assert all(r.status_code == 200 for r in got), got[0].text
        receipts = [r.json()["receipt"] for r in got]
        indices = [r["index"] for r in receipts]
        assert len(set(indices)) == len(indices)  # one log, no index twice
        size = a.wait_checkpoint(max(indices) + 1)
        assert [a.node.ledger.leading, b.node.ledger.leading].count(True) == 1
        key = note.Verifier.parse(httpx.get(f"{b.url}/v1/ledger/key").json()["log"])
        ckpt = note.parse_checkpoint(httpx.get(f"{b.url}/v1/ledger/checkpoint").text)
        assert ckpt.signed_by(key) and ckpt.size >= size
        for r in receipts:  # every receipt, whichever replica gave it, proved by the other
            other = a if r is receipts[1] else b
            p = httpx.get(f"{other.url}/v1/ledger/proof/inclusion",
                          params={"index": r["index"], "size": ckpt.size}).json()
            assert merkle.verify_inclusion(r["index"], ckpt.size,
                                           bytes.fromhex(r["entry_hash"]),
                                           [bytes.fromhex(h) for h in p["hashes"]], ckpt.root)
    store = PostgresLedgerStore(url)
    try:
        report = verify_store(store, key)
        assert report.ok, report.problems
    finally:
        store.close()


def test_grants_and_revocations_reach_the_other_replica_within_1_s(
        replicas: tuple[RunningHub, RunningHub, str]) -> None:
    a, b, _ = replicas
    with _client(a, "traffic-police") as owner, _client(b, "app-parking") as consumer:
        def allowed() -> bool:
            return consumer.post("/v1/query", json={
                "sql": SEGMENTS, "purpose": "parking-guidance"}).status_code == 200

        assert not allowed()
        r = owner.post("/v1/grants", json={"consumer": "app-parking",
                                           "datasets": ["traffic.segments"],
                                           "purposes": ["parking-guidance"]})
        assert r.status_code == 201, r.text
        granted = _until(allowed, 5)
        assert owner.delete(f"/v1/grants/{r.json()['id']}").status_code == 200
        revoked = _until(lambda: not allowed(), 5)
        print(f"grant seen by the other replica after {granted:.2f} s, revocation after "
              f"{revoked:.2f} s")
        assert granted < 1 and revoked < 1  # rechecked every GRANTS_CHECK_S (0.25 s)


def test_a_token_and_its_sessions_end_on_every_replica_within_1_s(
        replicas: tuple[RunningHub, RunningHub, str]) -> None:
    a, b, _ = replicas
    catalog = a.node.catalog
    token = issue_token(catalog, "cockpit-city", label="replicas")
    bearer = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=a.url) as on_a, httpx.Client(base_url=b.url) as on_b:
        # a session opened on one replica is valid on the other (the store holds it)
        assert on_a.post("/v1/session", json={"token": token}).status_code == 200
        on_b.cookies = on_a.cookies
        assert on_b.get("/v1/session").json()["member"] == "cockpit-city"
        assert httpx.get(f"{b.url}/v1/catalog", headers=bearer).status_code == 200  # cached

        def refused() -> bool:
            return (httpx.get(f"{b.url}/v1/catalog", headers=bearer).status_code == 401
                    and on_b.get("/v1/session").status_code == 401)

        assert not refused()
        assert revoke_tokens(catalog, "cockpit-city", token_hash(token)[:12]) == 1  # via a
        took = _until(refused, 6)
        print(f"revoked token and its session refused by the other replica after {took:.2f} s")
        assert took < 1  # the change list is asked every CHANGES_CHECK_S (0.25 s)
        assert on_a.get("/v1/session").status_code == 401
