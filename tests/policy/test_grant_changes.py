"""Grants made and revoked through the API and the CLI: applied at once, recorded with who
made them, and each kind of limit (purpose, row scope, masks, rate, expiry) enforced."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningHub

_OPEN: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def _client(hub: RunningHub, member: str) -> httpx.Client:
    c = httpx.Client(base_url=hub.url, timeout=30,
                     headers={"Authorization": f"Bearer {hub.token(member)}"})
    _OPEN.append(c)
    return c


def _q(c: httpx.Client, sql: str, purpose: str) -> httpx.Response:
    return c.post("/v1/query", json={"sql": sql, "purpose": purpose})


def test_api_grant_lifecycle(own_hub: RunningHub) -> None:
    parks, outsider = _client(own_hub, "parks"), _client(own_hub, "outsider")
    sql = "SELECT district, lon, lat, species FROM parks.trees"
    assert _q(outsider, sql, "research").json()["error"]["code"] == "forbidden"
    r = parks.post("/v1/grants", json={
        "consumer": "outsider", "datasets": ["parks.trees"], "purposes": ["research"],
        "row_scope": "district = 'binjiang'",
        "masking": {"lon": {"kind": "generalize", "digits": 2},
                    "lat": {"kind": "generalize", "digits": 2}, "species": "redact"}})
    assert r.status_code == 201, r.text
    gid = r.json()["id"]
    answer = _q(outsider, sql, "research").json()
    assert answer["row_count"] > 0
    assert answer["row_scope"] == [{"dataset": "parks.trees", "grant": gid,
                                    "scope": "district = 'binjiang'"}]
    for district, lon, lat, species in answer["rows"]:
        assert district == "binjiang" and species is None
        assert round(lon, 2) == lon and round(lat, 2) == lat
    assert _q(outsider, sql, "marketing").json()["error"]["code"] == "purpose_not_granted"
    listing = outsider.get("/v1/grants").json()
    assert [g["id"] for g in listing["received"]] == [gid]
    assert gid in [g["id"] for g in parks.get("/v1/grants").json()["given"]]
    # nobody grants what is not theirs
    stolen = outsider.post("/v1/grants", json={"consumer": "app-parking",
                                               "datasets": ["parks.trees"],
                                               "purposes": ["x"]})
    assert stolen.status_code == 400 and "not a dataset of `outsider`" in stolen.text
    assert outsider.delete(f"/v1/grants/{gid}").status_code == 404
    assert parks.delete(f"/v1/grants/{gid}").status_code == 200
    assert _q(outsider, sql, "research").json()["error"]["code"] == "forbidden"
    log = own_hub.service.store.changes()
    assert [(c["actor"], c["action"], c["subject"]) for c in log
            if c["action"].startswith("grant")] == [("member:parks", "grant.add", gid),
                                                    ("member:parks", "grant.revoke", gid)]


def test_rate_limit_and_expiry(own_hub: RunningHub) -> None:
    civil, outsider = _client(own_hub, "civil-affairs"), _client(own_hub, "outsider")
    assert civil.post("/v1/grants", json={
        "consumer": "outsider", "datasets": ["civil.districts"], "purposes": ["stats"],
        "rate_limit": 2}).status_code == 201
    codes = [_q(outsider, f"SELECT count(*) + {i} FROM civil.districts", "stats").status_code
             for i in range(3)]
    assert codes == [200, 200, 429]
    assert civil.post("/v1/grants", json={
        "consumer": "outsider", "datasets": ["civil.streets"], "purposes": ["stats"],
        "expires": "2020-01-01T00:00:00Z"}).status_code == 201
    assert _q(outsider, "SELECT count(*) FROM civil.streets", "stats").json()["error"][
        "code"] == "forbidden"


def test_cli_grant_applies_to_a_serving_hub(own_hub: RunningHub) -> None:
    def zs(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "zhongshu.cli", *args,
                               "--dir", str(own_hub.city_dir)], capture_output=True, text=True,
                              timeout=60, env=dict(os.environ))

    res = zs("grants", "add", "--owner", "health", "--consumer", "outsider",
             "--dataset", "health.hospitals", "--purpose", "maps")
    assert res.returncode == 0, res.stderr
    gid = res.stdout.strip().splitlines()[-1]
    outsider = _client(own_hub, "outsider")
    time.sleep(1.1)  # the hub re-reads grants at most once a second
    assert _q(outsider, "SELECT count(*) FROM health.hospitals", "maps").status_code == 200
    assert zs("grants", "revoke", gid, "--owner", "health").returncode == 0
    time.sleep(1.1)
    assert _q(outsider, "SELECT count(*) FROM health.hospitals", "maps").status_code == 403
    log = zs("changes").stdout
    assert "grant.add" in log and "grant.revoke" in log and "cli:" in log


def test_aggregate_only(own_hub: RunningHub, demo_dir: Path) -> None:
    """A grant made through the API with an aggregate-only column serves an aggregate
    dataset: the hub's own aggregates over cells of at least k subjects, nothing else."""
    import sqlite3

    credit, city = _client(own_hub, "credit-bureau"), _client(own_hub, "cockpit-city")
    assert credit.post("/v1/grants", json={
        "consumer": "cockpit-city", "datasets": ["credit.scores"], "purposes": ["statistics"],
        "columns": ["score", "updated_at"], "subject": "id_number",
        "masking": {"score": {"kind": "aggregate_only", "k": 10, "clip": [350, 950]}}}
    ).status_code == 201
    con = sqlite3.connect(demo_dir / "data" / "credit-bureau.sqlite")
    scores = [r[0] for r in con.execute("SELECT score FROM scores WHERE id_number IS NOT NULL")]
    con.close()
    assert len(scores) >= 10
    r = _q(city, "SELECT avg(score) AS a, count(*) AS n FROM credit.scores", "statistics")
    [[avg, n]] = r.json()["rows"]
    assert n == len(scores) and abs(avg - sum(scores) / len(scores)) < 1e-9
    for sql, code in (
            ("SELECT score FROM credit.scores", "column_not_granted"),
            ("SELECT max(score) FROM credit.scores", "function_not_allowed"),
            ("SELECT count(*) FROM credit.scores WHERE score > 700", "statement_not_allowed"),
            ("SELECT sum(score) OVER () FROM credit.scores", "statement_not_allowed"),
            ("SELECT updated_at, count(*) FROM credit.scores GROUP BY 1", "column_not_granted"),
            ("SELECT count(*) FROM credit.scores ORDER BY score", "statement_not_allowed"),
            ("WITH t AS (SELECT score FROM credit.scores) SELECT avg(score) FROM t",
             "statement_not_allowed")):
        assert _q(city, sql, "statistics").json()["error"]["code"] == code, sql
