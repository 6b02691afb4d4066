"""`zhongshu demo --live`: the demo's cameras publish on Mosquitto and the windows move."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import HubProcess, copy_demo_city, free_port, require_server
from tests.test_cli import zs
from zhongshu.demo.tokens import read_token

pytestmark = pytest.mark.slow


def test_live_demo_counts_increase(demo_dir: Path, city_tmp: Path) -> None:
    require_server("Mosquitto", 1883)
    root = copy_demo_city(demo_dir, city_tmp / "demo")
    hub = HubProcess(root, free_port(), "demo", "--live", "--rate", "300")
    try:
        url = hub.url
        token = read_token(root, "cockpit-city")
        sql = "SELECT sum(vehicles) AS n FROM traffic.segment_flow"

        def count() -> int:
            r = httpx.post(f"{url}/v1/query", json={"sql": sql, "purpose": "city-operations"},
                           headers={"Authorization": f"Bearer {token}"}, timeout=30)
            assert r.status_code == 200, r.text
            return int(r.json()["rows"][0][0] or 0)

        def rows(who: str, sql: str, purpose: str) -> list[list[object]]:
            r = httpx.post(f"{url}/v1/query", json={"sql": sql, "purpose": purpose},
                           headers={"Authorization": f"Bearer {who}"}, timeout=30)
            assert r.status_code == 200, r.text
            return r.json()["rows"]

        first = count()
        deadline = time.monotonic() + 10
        while count() <= first:
            assert time.monotonic() < deadline, "the live count did not increase within 10 s"
            time.sleep(0.5)
        # a district cockpit sees only its own district's live rows
        xihu = read_token(root, "cockpit-xihu")
        r = httpx.post(f"{url}/v1/query", headers={"Authorization": f"Bearer {xihu}"},
                       json={"sql": "SELECT DISTINCT district FROM traffic.segment_flow",
                             "purpose": "district-operations"}, timeout=30)
        assert r.status_code == 200 and {row[0] for row in r.json()["rows"]} <= {"xihu"}
        # and the garages' free spaces move too (both companies, each in its own dialect):
        # the latest value per garage, never more than its capacity
        for sql, capacity in (
                ("SELECT garage_no, arg_max(free, window_start) AS free FROM "
                 "parking_westlake.live_free GROUP BY 1",
                 "SELECT garage_no, total_spaces FROM parking_westlake.garages"),
                ("SELECT lot_id, arg_max(free, window_start) AS free FROM "
                 "parking_qiantang.live_free GROUP BY 1",
                 "SELECT lot_id, capacity FROM parking_qiantang.lots")):
            deadline = time.monotonic() + 15
            while not (garages := rows(token, sql, "city-operations")):
                assert time.monotonic() < deadline, f"no live rows: {sql}"
                time.sleep(0.5)
            total = dict(rows(token, capacity, "city-operations"))
            assert all(0 <= free <= total[g] for g, free in garages)
    finally:
        hub.stop()
    assert zs("ledger", "verify", "--dir", str(root)).returncode == 0
