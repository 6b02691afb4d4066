"""Pay-once hospital visits through the HTTP protocol (a real hub process serving the
scenario, on embedded and real engines): eligibility by the id number the hospital sends,
found on its pseudonym — no id number comes back, and the credit bureau sees the exchange on
the ledger — and a daily report per hospital equal to what the hospitals' own table says."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.scenarios.conftest import caller
from zhongshu.client import Hub
from zhongshu.demo.tokens import read_token
from zhongshu.scenarios.medical import MIN_SCORE, valid_id_number

pytestmark = pytest.mark.slow


def _owner(url: str, root: Path, member: str, sql: str) -> list[list[Any]]:
    with Hub(url, read_token(root, member)) as h:
        return h.query_json(sql, "x", limit=100_000)["rows"]


def _ask(url: str, root: Path, id_number: str) -> httpx.Response:
    """A hospital's system asks (a declared caller of the eligibility service)."""
    return httpx.post(f"{url}/scenarios/medical/eligibility", json={"id_number": id_number},
                      headers=caller(root, "hospital-h01"),
                      timeout=60)


def test_eligibility_by_id_number_without_one_coming_back(hub: tuple[str, Path]) -> None:
    url, root = hub
    scores = {idn: (score, float(limit)) for idn, score, limit in _owner(
        url, root, "credit-bureau", "SELECT id_number, score, limit_yuan FROM credit.scores")}
    visits: dict[str, int] = {}
    for (idn,) in _owner(url, root, "health", "SELECT id_number FROM health.visits"):
        visits[idn] = visits.get(idn, 0) + 1
    good = next(i for i, (s, lim) in sorted(scores.items()) if s >= MIN_SCORE + 50 and lim > 0)
    low = next(i for i, (s, _) in sorted(scores.items()) if s < MIN_SCORE)
    none = next(i for i in sorted(visits) if i not in scores)
    for idn, eligible, limit in ((good, True, scores[good][1]), (low, False, 0.0),
                                 (none, False, 0.0)):
        r = _ask(url, root, idn)
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["eligible"], body["credit_limit_yuan"]) == (eligible, limit), body
        assert body["earlier_visits"] == visits.get(idn, 0)
        assert idn not in r.text and idn[:14] not in r.text
    # the credit bureau sees who asked about its data, and why (once a checkpoint covers it)
    deadline = time.monotonic() + 15
    with Hub(url, read_token(root, "credit-bureau")) as bureau:
        while True:
            entries = bureau.get("/v1/ledger/usage", dataset="credit.scores").json()["entries"]
            asked = [e["entry"] for e in entries if e["entry"].get("caller") == "app-medical"]
            if len(asked) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert len(asked) >= 3 and all(e["purpose"] == "pay-once-medical" for e in asked)


def test_a_bad_id_number_is_refused_before_the_hub_is_asked(hub: tuple[str, Path]) -> None:
    url, root = hub
    good = "11010519491231002X"
    assert valid_id_number(good)
    for bad in (good[:-1] + "1", "1234567890123456789"[:18].replace("1", "A", 1), "short"):
        r = _ask(url, root, bad)
        assert r.status_code in (400, 422), r.text


def test_daily_report_equals_the_hospitals_own_table(hub: tuple[str, Path]) -> None:
    url, root = hub
    rows = _owner(url, root, "health", "SELECT hospital_id, arrived_at, left_at, paid_once "
                                       "FROM health.visits WHERE left_at IS NOT NULL")
    day = min(r[2] for r in rows)[:10]
    per: dict[str, list[tuple[float, bool]]] = {}
    for hid, arrived, left, once in rows:
        if left[:10] == day:
            minutes = (datetime.fromisoformat(left) - datetime.fromisoformat(arrived)
                       ).total_seconds() / 60
            per.setdefault(hid, []).append((minutes, once))
    r = httpx.get(f"{url}/scenarios/medical/report", params={"day": day},
                  headers=caller(root, "cockpit-city"), timeout=60)
    assert r.status_code == 200, r.text
    got = {h["hospital_id"]: h for h in r.json()["hospitals"]}
    assert set(got) == set(per)
    for hid, visits in per.items():
        once = [m for m, o in visits if o]
        each = [m for m, o in visits if not o]
        h = got[hid]
        assert h["visits"] == len(visits)
        assert h["share_paid_once"] == pytest.approx(len(once) / len(visits), abs=1e-3)
        if once and each:
            saved = sum(each) / len(each) - sum(once) / len(once)
            assert h["minutes_saved"] == pytest.approx(saved, abs=0.06)
    # the scenario's claim: paying once saves time, at every hospital (the demo models it)
    assert all(h["minutes_saved"] > 0 for h in got.values()), got
