"""A hub process serving the wire endpoint, and the HTTP protocol as the oracle.

``wire_hub`` is ``zhongshu demo --pg-port N`` on a private copy of the demo city (the demo
issues every member a token): the same process answers ``POST /v1/query``, so every wire
answer is checked against the HTTP answer for the same query and caller, and every receipt
against the ledger entry the caller can read over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import HubProcess, copy_demo_city, free_port, readable_dir
from zhongshu.demo.tokens import read_token

README_SQL = ("SELECT c.district, count(*) AS passages FROM traffic.passages p "
              "JOIN traffic.checkpoints c USING (camera_id) GROUP BY 1 ORDER BY 2 DESC")
CITY = ("cockpit-city", "city-operations")
TIME_LIMIT_S = 3.0


@dataclass
class WireHub:
    url: str
    pg_port: int
    root: Path

    def token(self, member: str) -> str:
        return read_token(self.root, member)

    def http(self, member: str, sql: str, purpose: str) -> httpx.Response:
        return httpx.post(f"{self.url}/v1/query", json={"sql": sql, "purpose": purpose},
                          headers={"Authorization": f"Bearer {self.token(member)}"},
                          timeout=60)

    def entry(self, member: str, index: int) -> dict[str, Any]:
        """The ledger entry at ``index``, as its caller reads it over HTTP."""
        r = httpx.get(f"{self.url}/v1/ledger/entries/{index}",
                      headers={"Authorization": f"Bearer {self.token(member)}"}, timeout=30)
        assert r.status_code == 200, r.text
        out: dict[str, Any] = json.loads(r.content)
        return out

    def visible(self, member: str, purpose: str) -> dict[str, set[str]]:
        """What ``member`` may read for ``purpose``, from the HTTP catalog and its grants:
        dataset → the columns granted for this purpose (all of them for its owner)."""
        h = {"Authorization": f"Bearer {self.token(member)}"}
        out: dict[str, set[str]] = {}
        for ds in httpx.get(f"{self.url}/v1/catalog", headers=h, timeout=30).json():
            detail = httpx.get(f"{self.url}/v1/datasets/{ds['name']}", headers=h,
                               timeout=30).json()
            cols: set[str] = set()
            for g in detail["grants"]:
                if "*" in g["purposes"] or purpose in g["purposes"]:
                    cols |= {c for c in g["columns"]
                             if g["masking"].get(c) != "aggregate_only"}
            if cols:
                out[ds["name"]] = cols
        return out

    def dsn(self, member: str, purpose: str, **extra: str) -> str:
        parts = {"host": "127.0.0.1", "port": str(self.pg_port), "user": member,
                 "dbname": purpose, "password": self.token(member), **extra}
        return " ".join(f"{k}={v}" for k, v in parts.items())


@pytest.fixture(scope="session")
def wire_hub(demo_dir: Path) -> Iterator[WireHub]:
    """``zhongshu demo --pg-port N`` serving a private copy of the demo city."""
    with readable_dir("zs-wire-hub-") as base, pytest.MonkeyPatch.context() as mp:
        # the firewall suite's heavy cases end at the limit on both paths: a short one
        mp.setenv("ZHONGSHU_QUERY_TIMEOUT_S", str(TIME_LIMIT_S))
        root = copy_demo_city(demo_dir, base / "city")
        pg_port = free_port()
        proc = HubProcess(root, free_port(), "demo", "--pg-port", str(pg_port))
        try:
            yield WireHub(proc.url, pg_port, root)
        finally:
            proc.stop()
