"""Probes and a ledger that cannot sign: a hub restarted on a rewritten ledger is live but
not ready, answers data queries ``503 ledger_unavailable`` with no receipt, and says
``degraded`` in its health — it never hands out a receipt no checkpoint will cover."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

from tests.conftest import RunningHub, copy_demo_city
from zhongshu.node import Node

SQL = {"sql": "SELECT count(*) AS n FROM civil.districts", "purpose": "city-operations"}


def _rewrite_the_tree(ledger_db: Path) -> None:
    """What a rewrite of the log does to its tree: every stored hash changes (here: to
    zeros), so the tree no longer has the root the hub signed."""
    with sqlite3.connect(ledger_db) as c:
        c.execute("UPDATE edge SET hash = zeroblob(32)")
        c.execute("UPDATE tiles SET hashes = zeroblob(length(hashes))")


def test_probes_of_a_healthy_hub_say_nothing_but_a_status(hub: RunningHub) -> None:
    for path, status in (("/livez", "live"), ("/readyz", "ready")):
        r = httpx.get(f"{hub.url}{path}")  # no credentials
        assert r.status_code == 200 and r.json() == {"status": status}
        assert str(hub.city_dir) not in r.text and "127.0.0.1" not in r.text


def test_a_rewritten_ledger_makes_the_hub_unready_and_refuse_to_answer(
        demo_dir: Path, city_tmp: Path) -> None:
    root = copy_demo_city(demo_dir, city_tmp / "city")
    with Node.open(root, serve=True, monitor=False) as node:
        hub = RunningHub(node, root)
        token = hub.token("cockpit-city")
        auth = {"Authorization": f"Bearer {token}"}
        r = httpx.post(f"{hub.url}/v1/query", json=SQL, headers=auth)
        assert r.status_code == 200 and r.json()["receipt"] is not None
        hub.wait_checkpoint()
        hub.stop()
    size = 0
    with sqlite3.connect(root / "state" / "ledger.db") as c:
        (size,) = c.execute("SELECT count(*) FROM entries").fetchone()
    _rewrite_the_tree(root / "state" / "ledger.db")
    with Node.open(root, serve=True, monitor=False) as node:  # restarted on the rewrite
        hub = RunningHub(node, root)
        try:
            assert httpx.get(f"{hub.url}/livez").status_code == 200
            ready = httpx.get(f"{hub.url}/readyz")
            assert ready.status_code == 503 and ready.json() == {"status": "unready"}
            r = httpx.post(f"{hub.url}/v1/query", json=SQL, headers=auth)
            assert r.status_code == 503, r.text
            body = r.json()
            assert body["error"]["code"] == "ledger_unavailable" and "receipt" not in body
            assert "rows" not in body and str(root) not in r.text
            health = httpx.get(f"{hub.url}/v1/health", headers=auth).json()
            assert health["status"] == "degraded"
            assert node.ledger is not None and node.ledger.size == size  # nothing recorded
        finally:
            hub.stop()
