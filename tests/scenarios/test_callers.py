"""The scenario door (``zhongshu.protocol.callers``) on a hub serving the scenarios as
`zhongshu serve` does: every scenario route admits exactly the callers its member's file
declares — checked for every route of the OpenAPI document and every member of the city,
against the member files read here as plain TOML — refuses the others with `403
caller_not_declared` recorded on the ledger (naming the caller and the scenario member),
names both the scenario member and the caller in the ledger entries of what it asks the hub,
and counts each caller's calls apart."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import RunningHub, copy_demo_city, readable_dir
from zhongshu.node import Node
from zhongshu.scenarios import discover

pytestmark = pytest.mark.slow
LIMIT = 3  # eligibility calls per minute per hospital, in this hub's copy of the city
_W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number(body: str) -> str:
    """A resident id number with its GB 11643 check character, computed here."""
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, _W, strict=True)) % 11]


@pytest.fixture(scope="module")
def served(demo_dir: Path) -> Iterator[RunningHub]:
    with readable_dir("zs-callers-") as base:
        root = copy_demo_city(demo_dir, base / "city")
        medical = root / "members" / "app-medical.toml"
        text = medical.read_text(encoding="utf-8")
        assert "rate_limit = 60" in text, "the demo's eligibility limit"
        medical.write_text(text.replace("rate_limit = 60", f"rate_limit = {LIMIT}"),
                           encoding="utf-8")
        node = Node.open(root, serve=True, monitor=False)
        hub = RunningHub(node, root, scenarios=True)
        try:
            yield hub
        finally:
            hub.stop()
            node.close()


def _members(root: Path) -> dict[str, dict[str, Any]]:
    """Every member file, as TOML (not through the hub's configuration models)."""
    out = {}
    for path in sorted((root / "members").glob("*.toml")):
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        out[doc["member"]["name"]] = doc
    return out


def _declared(doc: dict[str, Any], service: str, member: dict[str, Any]) -> bool:
    """Whether a scenario member's file admits ``member`` to ``service``."""
    me = member["member"]
    return any(service in t["services"] and (
        me["name"] in t.get("members", []) or me["kind"] in t.get("kinds", [])
        or set(me.get("roles", [])) & set(t.get("roles", []))) for t in doc.get("callers", []))


def _as(hub: RunningHub, member: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {hub.token(member)}"}


def _entry(hub: RunningHub, index: int, reader: str = "auditor") -> httpx.Response:
    return httpx.get(f"{hub.url}/v1/ledger/entries/{index}", headers=_as(hub, reader),
                     timeout=30)


def _eligibility(hub: RunningHub, member: str, idn: str) -> httpx.Response:
    return httpx.post(f"{hub.url}/scenarios/medical/eligibility", json={"id_number": idn},
                      headers=_as(hub, member), timeout=60)


def test_every_route_admits_exactly_the_declared_callers(served: RunningHub) -> None:
    members = _members(served.city_dir)
    owner = {f"/scenarios/{s.name}/": s.member for s in discover()}
    doc = httpx.get(f"{served.url}/v1/openapi.json", timeout=30).json()
    routes = [(m.upper(), p) for p, ops in doc["paths"].items() if p.startswith("/scenarios/")
              for m in ops]
    assert {p.split("/")[2] for _, p in routes} == {s.name for s in discover()}
    admitted = refused = 0
    with httpx.Client(base_url=served.url, timeout=60) as c:
        for method, path in routes:
            scenario = owner[next(k for k in owner if path.startswith(k))]
            service = path.split("/")[3]
            for name, member in members.items():
                # no parameters: an admitted caller then gets the route's own answer (a 400
                # for a missing one, or the view), a refused one never reaches the route
                r = c.request(method, path, headers=_as(served, name))
                code = r.json().get("error", {}).get("code") if r.headers.get(
                    "content-type", "").startswith("application/json") and \
                    isinstance(r.json(), dict) else None
                if _declared(members[scenario], service, member):
                    admitted += 1
                    assert r.status_code != 401 and code != "caller_not_declared", \
                        (method, path, name, r.text[:200])
                else:
                    refused += 1
                    assert (r.status_code, code) == (403, "caller_not_declared"), \
                        (method, path, name, r.text[:200])
                    assert "receipt" in r.json()  # recorded
    assert admitted >= len(routes) and refused > admitted  # both sides were exercised


def test_a_refusal_is_recorded_naming_the_caller_and_the_scenario(served: RunningHub
                                                                 ) -> None:
    size = served.node.ledger.size if served.node.ledger else 0
    anonymous = httpx.post(f"{served.url}/scenarios/medical/eligibility",
                           json={"id_number": id_number("33010619800101123")}, timeout=30)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthenticated"
    assert served.node.ledger is not None and served.node.ledger.size == size  # not recorded
    for who in ("outsider", "cockpit-city", "gate-westlake"):  # cockpits: report only
        r = _eligibility(served, who, id_number("33010619800101123"))
        assert r.status_code == 403 and r.json()["error"]["code"] == "caller_not_declared"
        got = orjson.loads(_entry(served, r.json()["receipt"]["index"]).content)
        assert {k: got[k] for k in ("kind", "caller", "scenario", "endpoint", "outcome")} == {
            "kind": "refusal", "caller": who, "scenario": "app-medical",
            "endpoint": "POST /scenarios/medical/eligibility",
            "outcome": "caller_not_declared"}
        assert "on_behalf_of" not in got


def test_the_hubs_entries_name_the_scenario_member_and_its_caller(served: RunningHub) -> None:
    ledger = served.node.ledger
    assert ledger is not None
    before = ledger.size
    r = _eligibility(served, "hospital-h05", id_number("33010619800101123"))
    assert r.status_code == 200, r.text
    after = ledger.size
    entries = [orjson.loads(_entry(served, i).content) for i in range(before, after)]
    asked = [e for e in entries if e["kind"] == "exchange"]
    assert {d for e in asked for d in e["datasets"]} == {"credit.scores", "health.visits"}
    assert all((e["caller"], e["on_behalf_of"], e["purpose"]) ==
               ("app-medical", "hospital-h05", "pay-once-medical") for e in asked)
    # the hospital may read what was asked for it; another hospital may not
    assert _entry(served, before, "hospital-h05").status_code == 200
    assert _entry(served, before, "hospital-h06").status_code == 404
    # a gate's lookup of a driver's stays, likewise
    before = ledger.size
    r = httpx.get(f"{served.url}/scenarios/parking/sessions", params={"plate": "浙A12345"},
                  headers=_as(served, "gate-westlake"), timeout=60)
    assert r.status_code == 200, r.text
    asked = [e for e in (orjson.loads(_entry(served, i).content)
                         for i in range(before, ledger.size)) if e["kind"] == "exchange"]
    assert len(asked) == 2 and all((e["caller"], e["on_behalf_of"]) ==
                                   ("app-parking", "gate-westlake") for e in asked)


def test_rate_limits_hold_per_caller(served: RunningHub) -> None:
    idn = id_number("33010619800101123")
    answers = [_eligibility(served, "hospital-h11", idn).status_code for _ in range(LIMIT + 1)]
    assert 429 in answers, answers
    first = answers.index(429)
    assert all(s == 200 for s in answers[:first]) and first <= LIMIT
    limited = _eligibility(served, "hospital-h11", idn)
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited" and "receipt" in limited.json()
    # the other hospital's calls are its own
    assert _eligibility(served, "hospital-h12", idn).status_code == 200
