"""Convenient parking through the HTTP protocol (a real hub process serving the scenario):
one view of both operators' garages, equal to what the operators' own tables say; a missing
grant fails with the hub's own error. (Its NGSI-LD entities are the hub's own face now,
``/ngsi-ld/v1/``: tests/protocol/test_ngsild.py.)"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import HubProcess, copy_demo_city, free_port, readable_dir
from tests.scenarios.conftest import caller
from zhongshu.client import Hub
from zhongshu.demo.tokens import read_token

pytestmark = pytest.mark.slow


def _truth(url: str, root: Path) -> dict[str, tuple[int, int, list[float], str]]:
    """Each garage's (total, free now, [lon, lat], district) from the operators' own full
    tables, read by each operator itself and computed here."""
    out = {}
    with Hub(url, read_token(root, "parking-westlake")) as wl:
        garages = wl.query_json("SELECT garage_no, total_spaces, lng, lat, district FROM "
                                "parking_westlake.garages", "x")["rows"]
        recent = wl.query_json("SELECT garage_no, ts, free FROM parking_westlake.occupancy "
                               "WHERE ts > (SELECT max(ts) FROM parking_westlake.occupancy) "
                               "- INTERVAL 1 DAY", "x")  # the last day of four weeks
        assert not recent["truncated"]
        counts = recent["rows"]
    latest: dict[str, tuple[str, int]] = {}
    for g, ts, free in counts:
        if g not in latest or ts > latest[g][0]:
            latest[g] = (ts, free)
    for g, total, lon, lat, district in garages:
        free = latest[g][1]
        out[f"urn:ngsi-ld:OffStreetParking:parking-westlake:{g}"] = (
            total, max(0, min(total, free)), [lon, lat], district)
    with Hub(url, read_token(root, "parking-qiantang")) as qt:
        lots = qt.query_json("SELECT lot_id, capacity, occupied, x, y, area_code FROM "
                             "parking_qiantang.lots", "x")["rows"]
        codes = {d["code"]: d["name"] for d in qt.get("/v1/city").json()["districts"]}
    for lot, cap, occ, x, y, code in lots:
        out[f"urn:ngsi-ld:OffStreetParking:parking-qiantang:{lot}"] = (
            cap, max(0, min(cap, cap - occ)), [x, y], codes[code])
    return out


def _metres(a: list[float], b: list[float]) -> float:
    """Haversine on the IUGG mean radius, written here independently of the scenario."""
    p1, p2 = math.radians(a[1]), math.radians(b[1])
    dp, dl = p2 - p1, math.radians(b[0] - a[0])
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.atan2(math.sqrt(h), math.sqrt(1 - h))



def test_the_view_equals_the_operators_own_tables(hub: tuple[str, Path]) -> None:
    url, root = hub
    truth = _truth(url, root)
    r = httpx.get(f"{url}/scenarios/parking/garages", headers=caller(root, "cockpit-city"),
                  timeout=60)
    assert r.status_code == 200, r.text
    got = {e["id"]: (e["totalSpotNumber"], e["availableSpotNumber"],
                     e["location"]["coordinates"], e["district"]) for e in r.json()}
    assert got == truth


def test_without_its_grant_the_scenario_fails_with_the_hubs_error(demo_dir: Path) -> None:
    with readable_dir("zs-parking-refused-") as base:
        root = copy_demo_city(demo_dir, base / "city")
        member = root / "members" / "parking-qiantang.toml"
        text = member.read_text()
        grant = re.search(r'\[\[grants\]\]\nconsumer = "app-parking"\npurposes = \[\n'
                          r'    "convenient-parking",\n\]\ndatasets = \[\n'
                          r'    "parking_qiantang.lots",\n\]\n', text)
        assert grant, "the demo's grant of lots to app-parking"
        member.write_text(text.replace(grant.group(0), ""))
        proc = HubProcess(root, free_port(), "demo")
        try:
            r = httpx.get(f"{proc.url}/scenarios/parking/garages",
                          headers=caller(root, "gate-westlake"), timeout=60)
            assert r.status_code == 403, r.text
            assert r.json()["error"]["code"] == "forbidden"
            assert "parking_qiantang.lots" in r.json()["error"]["message"]
        finally:
            proc.stop()


def _owner_stays(url: str, root: Path) -> list[tuple[str, str, Any, Any, float | None]]:
    """(operator, plate in clear, entered, left, fee) of every stay, read by the operators."""
    out: list[tuple[str, str, Any, Any, float | None]] = []
    with Hub(url, read_token(root, "parking-westlake")) as wl:
        for plate, entered, left, fee in wl.query_json(
                'SELECT plate, entered, "left", fee_cents FROM parking_westlake.sessions',
                "x", limit=100_000)["rows"]:
            out.append(("parking-westlake", plate, entered, left,
                        None if fee is None else fee / 100))
    with Hub(url, read_token(root, "parking-qiantang")) as qt:
        for plate, t_in, t_out, amount in qt.query_json(
                "SELECT car_plate, t_in, t_out, amount_yuan FROM parking_qiantang.tickets",
                "x", limit=100_000)["rows"]:
            out.append(("parking-qiantang", plate, t_in, t_out,
                        None if amount is None else float(amount)))
    return out


def test_a_drivers_stays_across_both_operators_without_a_plate_in_clear(
        hub: tuple[str, Path]) -> None:
    url, root = hub
    stays = _owner_stays(url, root)
    by_plate: dict[str, set[str]] = {}
    for op, plate, *_ in stays:
        by_plate.setdefault(plate, set()).add(op)
    plate = sorted(p for p, ops in by_plate.items() if len(ops) == 2)[0]  # parked at both
    mine = [s for s in stays if s[1] == plate]
    # the driver types it as Qiantang prints it
    r = httpx.get(f"{url}/scenarios/parking/sessions",
                  params={"plate": plate[:2] + "-" + plate[2:]},
                  headers=caller(root, "gate-qiantang"), timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert sorted((s["operator"], s["entered"], s["fee_yuan"]) for s in body["sessions"]) == \
        sorted((op, entered, fee) for op, _, entered, _, fee in mine)
    assert body["due_yuan"] == round(sum(fee or 0 for *_, left, fee in mine if left), 2)
    assert plate not in r.text and plate[2:] not in r.text  # no plate comes back
    assert httpx.get(f"{url}/scenarios/parking/sessions", params={"plate": "robert'); --"},
                     headers=caller(root, "gate-qiantang"), timeout=60).status_code == 400


def test_daily_settlement_joins_operators_by_pseudonym(hub: tuple[str, Path]) -> None:
    url, root = hub
    stays = _owner_stays(url, root)
    day = min(s[2] for s in stays)[:10]
    ended = [s for s in stays if s[3] and s[3][:10] == day]
    r = httpx.get(f"{url}/scenarios/parking/settlement", params={"day": day},
                  headers=caller(root, "cockpit-city"), timeout=60)
    assert r.status_code == 200, r.text
    got = {o["operator"]: o for o in r.json()["operators"]}
    for op, other in (("parking-westlake", "parking-qiantang"),
                      ("parking-qiantang", "parking-westlake")):
        mine = [s for s in ended if s[0] == op]
        theirs = {s[1] for s in ended if s[0] == other}
        drivers = {s[1] for s in mine}
        assert got[op]["stays"] == len(mine) > 0
        assert got[op]["due_yuan"] == pytest.approx(sum(s[4] or 0 for s in mine), abs=0.01)
        assert got[op]["drivers"] == len(drivers)
        assert got[op]["also_other"] == len(drivers & theirs)
    assert any(o["also_other"] > 0 for o in got.values())  # the join found someone


def test_nearest_ranks_by_walk_among_garages_expected_to_have_space(
        hub: tuple[str, Path]) -> None:
    url, root = hub
    truth = _truth(url, root)
    # each Westlake garage's own counts, read by the operator a garage at a time
    usual: dict[str, dict[tuple[int, int], float]] = {}
    latest: dict[str, tuple[datetime, int]] = {}
    with Hub(url, read_token(root, "parking-westlake")) as wl:
        for (g,) in wl.query_json("SELECT garage_no FROM parking_westlake.garages", "x")["rows"]:
            sums: dict[tuple[int, int], list[int]] = {}
            for ts, free in wl.query_json(f"SELECT ts, free FROM parking_westlake.occupancy "
                                          f"WHERE garage_no = '{g}'", "x")["rows"]:
                t = datetime.fromisoformat(ts)
                sums.setdefault((t.isoweekday(), t.hour), []).append(free)
                if g not in latest or t > latest[g][0]:
                    latest[g] = (t, free)
            usual[g] = {k: sum(v) / len(v) for k, v in sums.items()}
    anchor = next(k for k in truth if "westlake" in k)
    lon, lat = truth[anchor][2]
    now = max(t for t, _ in latest.values())
    arrive = now + timedelta(hours=2, minutes=30)
    want = []
    for gid, (total, free, where, _) in truth.items():
        walk = _metres([lon, lat], where) * 1.25
        if walk > 3000:
            continue
        key = gid.rsplit(":", 1)[1]
        expected = float(free)
        if "westlake" in gid:
            t0 = latest[key][0]
            u0, u1 = usual[key][(t0.isoweekday(), t0.hour)], \
                usual[key][(arrive.isoweekday(), arrive.hour)]
            h = (arrive - t0).total_seconds() / 3600
            expected = max(0.0, min(total, u1 + (free - u0) * 0.5 ** h))
        want.append((expected < 1, round(walk), gid, expected))
    want.sort()
    r = httpx.get(f"{url}/scenarios/parking/nearest", params={
        "lon": str(lon), "lat": str(lat), "arrive_at": arrive.isoformat(),
        "max_walk_m": "3000", "limit": "100"}, headers=caller(root, "gate-westlake"),
        timeout=60)
    assert r.status_code == 200, r.text
    got = r.json()
    assert [g["id"] for g in got] == [w[2] for w in want] and len(got) >= 3
    for g, w in zip(got, want, strict=True):
        assert g["expected_free"] == pytest.approx(w[3], abs=0.051)
        assert abs(g["walk_m"] - w[1]) <= 1
    assert got[0]["id"] == anchor and got[0]["walk_m"] == 0
