"""A cached plan never outlives the grant it was built under: every execution re-decides each
dataset's access at that moment, so a grant that expired, was revoked or was replaced (another
row scope) refuses or re-scopes the same query shape with new literals — on the quick path
(answered on the event loop from a cached plan) and the thread path alike."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx

from tests.conftest import RunningHub

SHAPE = "SELECT lot_id, capacity FROM parking_qiantang.lots WHERE lot_id = '{}'"
PURPOSE = "research"


def _clients(hub: RunningHub) -> tuple[httpx.Client, httpx.Client]:
    def client(member: str) -> httpx.Client:
        return httpx.Client(base_url=hub.url, timeout=30,
                            headers={"Authorization": f"Bearer {hub.token(member)}"})
    return client("parking-qiantang"), client("outsider")


def _lots(owner: httpx.Client) -> list[str]:
    r = owner.post("/v1/query", json={"sql": "SELECT lot_id FROM parking_qiantang.lots "
                                             "ORDER BY lot_id", "purpose": "own"})
    assert r.status_code == 200, r.text
    return [row[0] for row in r.json()["rows"]]


def _ask(c: httpx.Client, lot: str) -> httpx.Response:
    return c.post("/v1/query", json={"sql": SHAPE.format(lot), "purpose": PURPOSE})


def _warm(c: httpx.Client, lots: list[str]) -> None:
    """Run the shape often enough to be cached and measured quick on SQLite."""
    for lot in lots[:6]:
        r = _ask(c, lot)
        assert r.status_code == 200, r.text
        assert r.json()["rows"] == [[lot, r.json()["rows"][0][1]]]


def test_expired_grant_refuses_the_cached_shape(own_hub: RunningHub) -> None:
    owner, outsider = _clients(own_hub)
    lots = _lots(owner)
    assert len(lots) >= 8
    expires = datetime.now(UTC) + timedelta(seconds=3)
    r = owner.post("/v1/grants", json={"consumer": "outsider",
                                       "datasets": ["parking_qiantang.lots"],
                                       "purposes": [PURPOSE], "expires": expires.isoformat()})
    assert r.status_code == 201, r.text
    _warm(outsider, lots)
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.2)
    for lot in lots[6:8]:  # the same shape, literals never seen before
        refused = _ask(outsider, lot)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "forbidden"
        assert "receipt" in refused.json()  # the refusal is recorded


def test_revoked_and_rescoped_grants_apply_to_cached_plans(own_hub: RunningHub) -> None:
    owner, outsider = _clients(own_hub)
    lots = _lots(owner)
    first = owner.post("/v1/grants", json={"consumer": "outsider",
                                           "datasets": ["parking_qiantang.lots"],
                                           "purposes": [PURPOSE]}).json()["id"]
    _warm(outsider, lots)
    assert owner.delete(f"/v1/grants/{first}").status_code == 200
    assert _ask(outsider, lots[6]).json()["error"]["code"] == "forbidden"
    # a new grant scoped to one lot: the cached shape must answer under the new scope
    scoped = owner.post("/v1/grants", json={
        "consumer": "outsider", "datasets": ["parking_qiantang.lots"], "purposes": [PURPOSE],
        "row_scope": f"lot_id = '{lots[0]}'"}).json()["id"]
    assert _ask(outsider, lots[0]).json()["rows"][0][0] == lots[0]
    hidden = _ask(outsider, lots[7]).json()
    assert hidden["rows"] == [] and hidden["row_scope"][0]["grant"] == scoped


def test_a_row_scope_reading_through_an_expired_grant_stops_the_cached_shape(
        own_hub: RunningHub) -> None:
    owner, outsider = _clients(own_hub)
    civil = httpx.Client(base_url=own_hub.url, timeout=30,
                         headers={"Authorization": f"Bearer {own_hub.token('civil-affairs')}"})
    lots = _lots(owner)
    expires = datetime.now(UTC) + timedelta(seconds=4)
    # the owner's scope reads another owner's dataset, through a grant the owner holds
    r = civil.post("/v1/grants", json={"consumer": "parking-qiantang",
                                       "datasets": ["civil.districts"], "purposes": [PURPOSE],
                                       "expires": expires.isoformat()})
    assert r.status_code == 201, r.text
    r = owner.post("/v1/grants", json={
        "consumer": "outsider", "datasets": ["parking_qiantang.lots"], "purposes": [PURPOSE],
        "row_scope": "lot_id IS NOT NULL OR EXISTS (SELECT 1 FROM civil.districts)"})
    assert r.status_code == 201, r.text
    _warm(outsider, lots)
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.2)
    for lot in lots[6:8]:
        after = _ask(outsider, lot)
        assert after.status_code != 200, after.text  # the scope can no longer be evaluated
        assert after.json()["error"]["code"] in ("dataset_unavailable", "forbidden"), after.text
