"""The lookup budget (issue 16): distinct pseudonymised values a consumer looks up per
purpose in 24 h, counted after the column's normalisation, spent at every run.

The demo grants ``parking_westlake.sessions`` to ``app-parking`` with plates as a pseudonym
normalised as plates and ``lookups_per_day = 100``. A private hub (memory stores) over a
copy of the demo city is used, so the session's other tests keep their budgets; the raw
plates are read from the operator's SQLite file, without the hub.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import copy_demo_city
from zhongshu.errors import LookupBudgetExceeded
from zhongshu.node import Node, Stores
from zhongshu.policy.identity import Caller
from zhongshu.policy.lookups import WINDOW_S
from zhongshu.query.inference import spend_lookups
from zhongshu.query.service import QueryService

P = "convenient-parking"
KEY = f"app-parking|{P}"
T = "parking_westlake.sessions"


@pytest.fixture
def hub(demo_dir: Path, tmp_path: Path) -> Iterator[QueryService]:
    root = tmp_path / "city"
    copy_demo_city(demo_dir, root)  # without state and the log key's pin
    with Node.open(root, stores=Stores.memory(), monitor=False) as node:
        yield node.query


@pytest.fixture(scope="module")
def plates(demo_dir: Path) -> dict[str, int]:
    """Plate → sessions, as the operator stores them."""
    con = sqlite3.connect(f"file:{demo_dir / 'data' / 'parking-westlake.sqlite'}?mode=ro",
                          uri=True)
    out = dict(con.execute("SELECT plate, count(*) FROM sessions GROUP BY plate"))
    con.close()
    return out


def _spent(hub: QueryService) -> int:
    return hub.lookups.counts.count(KEY, WINDOW_S, time.time())


def _guesses(n: int, start: int = 0) -> list[str]:
    return [f"浙A{i:05d}" for i in range(start, start + n)]


def test_an_honest_lookup_works_and_three_spellings_are_one(hub: QueryService,
                                                           plates: dict[str, int]) -> None:
    who = Caller(hub.catalog.members["app-parking"])
    plate = max(plates, key=lambda p: plates[p])
    spellings = [plate, f"{plate[:2]}-{plate[2:]}", f"{plate[:2]} {plate[2:].lower()}",
                 f"{plate[:2]}.{plate[2:]}"]
    for s in spellings:
        rows = hub.run(who, f"SELECT count(*) FROM {T} WHERE plate = '{s}'", P).rows()
        assert rows == [[plates[plate]]], s  # found under every spelling
    rows = hub.run(who, f"SELECT count(*) FROM {T} WHERE plate IN ('{spellings[1]}', "
                        f"'{spellings[2]}')", P).rows()
    assert rows == [[plates[plate]]]
    assert _spent(hub) == 1


def test_a_case_enumeration_is_refused_once_over_budget(hub: QueryService) -> None:
    who = Caller(hub.catalog.members["app-parking"])

    def batch(guesses: list[str]) -> str:
        whens = " ".join(f"WHEN plate = '{g}' THEN '{g}'" for g in guesses)
        return f"SELECT CASE {whens} END AS hit, count(*) AS n FROM {T} GROUP BY 1"

    hub.run(who, batch(_guesses(40)), P)
    hub.run(who, batch(_guesses(40, 40)), P)
    assert _spent(hub) == 80
    hub.run(who, batch(_guesses(40, 60)), P)  # 20 of the 80 again, 20 new: 100, the budget
    assert _spent(hub) == 100
    with pytest.raises(LookupBudgetExceeded) as e:
        hub.run(who, batch(_guesses(40, 100)), P)
    assert e.value.code == "lookup_budget_exceeded" and e.value.status == 429
    assert "浙A" not in e.value.message
    assert _spent(hub) == 100  # a refused batch spends nothing
    hub.run(who, f"SELECT count(*) FROM {T} WHERE plate = '{_guesses(1)[0]}'", P)  # paid for
    with pytest.raises(LookupBudgetExceeded):
        hub.run(who, f"SELECT count(*) FROM {T} WHERE plate = '浙B99999'", P)


def test_an_in_list_and_a_cached_plan_spend_per_distinct_value(hub: QueryService) -> None:
    who = Caller(hub.catalog.members["app-parking"])
    listed = ", ".join(f"'{g}'" for g in _guesses(150))
    with pytest.raises(LookupBudgetExceeded):
        hub.run(who, f"SELECT plate FROM {T} WHERE plate IN ({listed})", P)
    assert _spent(hub) == 0
    # one template, one cached plan; each run's parameter is a new value
    for g in _guesses(100):
        hub.run(who, f"SELECT count(*) FROM {T} WHERE plate = '{g}'", P)
    assert len(hub.plans._plans) >= 1 and _spent(hub) == 100  # type: ignore[attr-defined]
    with pytest.raises(LookupBudgetExceeded):
        hub.run(who, f"SELECT count(*) FROM {T} WHERE plate <> '浙C00001'", P)


def test_the_budget_is_per_consumer_and_purpose(hub: QueryService) -> None:
    parking = Caller(hub.catalog.members["app-parking"])
    listed = ", ".join(f"'{g}'" for g in _guesses(100))
    hub.run(parking, f"SELECT count(*) FROM {T} WHERE plate IN ({listed})", P)
    with pytest.raises(LookupBudgetExceeded):
        hub.run(parking, "SELECT count(*) FROM parking_qiantang.tickets WHERE car_plate = "
                         "'浙Z00001'", P)  # another dataset, the same consumer × purpose
    traffic = Caller(hub.catalog.members["app-traffic"])
    hub.run(traffic, "SELECT count(*) FROM traffic.passages WHERE plate = '浙Z00001'",
            "traffic-management")


def test_a_scenario_spends_its_callers_budget(hub: QueryService) -> None:
    """A scenario member asking on behalf of one of its callers (``Caller.on_behalf_of``, as
    the hub accepted it) spends that caller's budget and its own: the member's bounds what
    its pseudonym key reveals whichever caller it names, the caller's its own share."""
    member = hub.catalog.members["app-parking"]
    gate = Caller(member, on_behalf_of="gate-westlake")
    hub.run(gate, f"SELECT count(*) FROM {T} WHERE plate = '浙a-00001'", P)
    hub.run(Caller(member, on_behalf_of="gate-qiantang"),
            f"SELECT count(*) FROM {T} WHERE plate IN ('浙A00001', '浙A00002')", P)
    now = time.time()
    assert hub.lookups.counts.count(f"gate-westlake|{P}", WINDOW_S, now) == 1
    assert hub.lookups.counts.count(f"gate-qiantang|{P}", WINDOW_S, now) == 2
    assert _spent(hub) == 2  # the member: 浙A00001 once, whoever asked
    plan, template = hub.plan(gate, f"SELECT count(*) FROM {T} WHERE plate = '浙a 00003'", P)
    assert spend_lookups(hub.lookups, plan, template, "gate-westlake").params == ("浙A00003",)


def test_a_refusal_over_budget_is_recorded(own_hub: Any) -> None:
    c = httpx.Client(base_url=own_hub.url, timeout=30,
                     headers={"Authorization": f"Bearer {own_hub.token('app-parking')}"})
    try:
        listed = ", ".join(f"'{g}'" for g in _guesses(101))
        r = c.post("/v1/query", json={"sql": f"SELECT count(*) FROM {T} WHERE plate IN "
                                              f"({listed})", "purpose": P})
        assert r.status_code == 429 and r.json()["error"]["code"] == "lookup_budget_exceeded"
        index = r.json()["receipt"]["index"]
        entry = c.get(f"/v1/ledger/receipts/{index}").json()
        fields = json.loads(entry["entry"])
        assert fields["kind"] == "refusal" and fields["outcome"] == "lookup_budget_exceeded"
        assert "浙A" not in json.dumps(entry)
        ok = c.post("/v1/query", json={"sql": f"SELECT count(*) FROM {T} WHERE plate = "
                                              "'浙A00001'", "purpose": P})
        assert ok.status_code == 200  # an honest single lookup still works
    finally:
        c.close()


def test_a_row_scope_is_no_way_around_its_owners_budget(hub: QueryService) -> None:
    """An owner who holds a pseudonymised grant could put its guesses in the row scope of a
    grant of its own, and watch what a consumer it controls gets: the scope's lookups are
    charged to the scope's owner, at every run of every consumer's query."""
    def grant(guesses: list[str], consumer: str) -> None:
        listed = ", ".join(f"'{g}'" for g in guesses)
        hub.grants.add("app-traffic", {
            "consumer": consumer, "datasets": ["traffic_signals.recommendations"],
            "purposes": ["traffic-management"],
            "row_scope": f"EXISTS (SELECT 1 FROM traffic.passages WHERE plate IN ({listed}))"},
            actor="test")
        hub.refresh_grants(force=True)

    grant(_guesses(50), "outsider")
    sql = "SELECT count(*) FROM traffic_signals.recommendations"
    outsider = Caller(hub.catalog.members["outsider"])
    hub.run(outsider, sql, "traffic-management")
    now = time.time()
    assert hub.lookups.counts.count("app-traffic|traffic-management", WINDOW_S, now) == 50
    assert hub.lookups.counts.count("outsider|traffic-management", WINDOW_S, now) == 0
    grant(_guesses(60, 50), "app-parking")
    with pytest.raises(LookupBudgetExceeded) as e:
        hub.run(Caller(hub.catalog.members["app-parking"]), sql, "traffic-management")
    assert "app-traffic" in e.value.message


def test_other_forms_look_nothing_up_and_spend_nothing(hub: QueryService,
                                                       plates: dict[str, int]) -> None:
    """Only ``col = value`` / ``<>`` / ``IN`` pseudonymise the caller's value: every other way
    of comparing a known plate compares its pseudonym with raw text, and finds nothing."""
    who = Caller(hub.catalog.members["app-parking"])
    plate = max(plates, key=lambda p: plates[p])
    for where in (f"plate = (SELECT '{plate}')", f"plate = '{plate[:3]}' || '{plate[3:]}'",
                  f"plate = ANY (['{plate}'])", f"plate IS NOT DISTINCT FROM '{plate}'",
                  f"CASE plate WHEN '{plate}' THEN TRUE ELSE FALSE END",
                  f"plate IN (SELECT p FROM (VALUES ('{plate}')) AS v(p))",
                  f"upper(plate) = '{plate}'"):
        rows = hub.run(who, f"SELECT count(*) FROM {T} WHERE {where}", P).rows()
        assert rows == [[0]], where
    joined = hub.run(who, f"SELECT count(*) FROM {T} AS s JOIN (VALUES ('{plate}')) AS v(p) "
                          "ON s.plate = v.p", P).rows()
    assert joined == [[0]]
    assert _spent(hub) == 0
