"""On behalf of (``Zhongshu-On-Behalf-Of``, ``zhongshu.policy.behalf``) over HTTP: only a
scenario member may name a caller, only one its file declares, once; the refusal is
recorded under the asker's name, and an accepted request's entry names both. Every pair
(asker, named) of the city's members is tried against the member files read as plain TOML."""

from __future__ import annotations

import tomllib
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import RunningHub
from zhongshu.client import ON_BEHALF_OF, Hub
from zhongshu.errors import BehalfRefused
from zhongshu.policy.behalf import acting_for
from zhongshu.policy.identity import Caller

SQL = "SELECT count(*) AS n FROM health.hospitals"


def _members(hub: RunningHub) -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted((hub.city_dir / "members").glob("*.toml")):
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        out[doc["member"]["name"]] = doc
    return out


def _may_name(asker: dict[str, Any], named: dict[str, Any]) -> bool:
    """The oracle: a scenario member, naming a member some table of its file admits."""
    me = named["member"]
    return asker["member"]["kind"] == "scenario" and any(
        me["name"] in t.get("members", []) or me["kind"] in t.get("kinds", [])
        or set(me.get("roles", [])) & set(t.get("roles", []))
        for t in asker.get("callers", []))


def _ask(hub: RunningHub, member: str, *named: str, purpose: str = "pay-once-medical"
         ) -> httpx.Response:
    headers = [("Authorization", f"Bearer {hub.token(member)}"),
               *((ON_BEHALF_OF, n) for n in named)]
    return httpx.post(f"{hub.url}/v1/query", json={"sql": SQL, "purpose": purpose},
                      headers=headers, timeout=30)


def _entry(hub: RunningHub, index: int) -> dict[str, Any]:
    r = httpx.get(f"{hub.url}/v1/ledger/entries/{index}",
                  headers={"Authorization": f"Bearer {hub.token('auditor')}"}, timeout=30)
    assert r.status_code == 200, r.text
    parsed: dict[str, Any] = orjson.loads(r.content)
    return parsed


def test_every_asker_and_named_pair_against_the_member_files(hub: RunningHub) -> None:
    members = _members(hub)
    catalog = hub.service.catalog
    accepted = 0
    for asker, adoc in members.items():
        who = Caller(catalog.members[asker])
        for named, ndoc in members.items():
            if _may_name(adoc, ndoc):
                assert acting_for(catalog, who, named).on_behalf_of == named
                accepted += 1
            else:
                with pytest.raises(BehalfRefused):
                    acting_for(catalog, who, named)
        with pytest.raises(BehalfRefused):
            acting_for(catalog, who, "no-such-member")
    assert accepted > 0


def test_an_accepted_request_names_both(hub: RunningHub) -> None:
    r = _ask(hub, "app-medical", "hospital-h01")
    assert r.status_code == 200, r.text
    got = _entry(hub, r.json()["receipt"]["index"])
    assert (got["kind"], got["caller"], got["on_behalf_of"]) == \
        ("exchange", "app-medical", "hospital-h01")
    # the client names the caller the same way
    with Hub(hub.url, hub.token("app-medical"), on_behalf=lambda: "hospital-h02") as client:
        receipt = orjson.loads(client.query(SQL, "pay-once-medical").schema.metadata[
            b"receipt"])
    assert _entry(hub, receipt["index"])["on_behalf_of"] == "hospital-h02"


@pytest.mark.parametrize(("asker", "named", "purpose"), [
    ("health", ("hospital-h01",), "x"),                   # a department: not a scenario
    ("cockpit-city", ("hospital-h01",), "city-operations"),  # a cockpit neither
    ("app-medical", ("outsider",), "pay-once-medical"),   # not declared by app-medical
    ("app-parking", ("hospital-h01",), "convenient-parking"),  # declared by another one
    ("app-medical", ("nobody-here",), "pay-once-medical"),  # no such member
    ("app-medical", ("hospital-h01", "outsider"), "pay-once-medical"),  # two names
    ("app-medical", ("x" * 5000,), "pay-once-medical"),   # long: refused, not echoed
])
def test_forged_or_unchecked_names_are_refused_and_recorded(
        hub: RunningHub, asker: str, named: tuple[str, ...], purpose: str) -> None:
    r = _ask(hub, asker, *named, purpose=purpose)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "on_behalf_refused"
    assert "x" * 200 not in r.text
    got = _entry(hub, r.json()["receipt"]["index"])
    assert (got["kind"], got["caller"], got["outcome"]) == \
        ("refusal", asker, "on_behalf_refused")
    assert "on_behalf_of" not in got
