"""People as callers, end to end on a hub serving the scenarios as `zhongshu serve` does.

A citizen signs in with the demo's identity provider (an ID token the hub checks against
the JWKS it fetches from the demo hub over HTTP) and reads only data about themselves: their
own plates' stays, their own pay-once eligibility once they consented. Tokens signed by
another key, expired, for another audience or issuer, or shaped to slip past the checks are
refused. Then ``GET /v1/me/usage``: lookups about several people by members, scenarios and a
cockpit, and each person sees exactly the entries made about them — the oracle is the test's
own bookkeeping of which ledger entries each action appended — each with an inclusion proof
checked here from ``hashlib`` alone (RFC 9162), against a checkpoint whose signature is
checked with ``cryptography`` (C2SP signed note), never with the hub's ledger modules.

The people are found in the demo's own SQLite files with ``sqlite3`` (not through the hub).
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.conftest import RunningHub, copy_demo_city, readable_dir
from zhongshu.config import load_city
from zhongshu.demo import idp
from zhongshu.node import Node

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(demo_dir: Path) -> Iterator[RunningHub]:
    with readable_dir("zs-people-") as base:
        root = copy_demo_city(demo_dir, base / "city")
        node = Node.open(root, serve=True, monitor=False)
        hub = RunningHub(node, root, scenarios=True)
        try:
            yield hub
        finally:
            hub.stop()
            node.close()


# --- the people, from the demo's files -----------------------------------------------------

def _rows(root: Path, member: str, sql: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(f"file:{root / 'data' / f'{member}.sqlite'}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _stays(root: Path, plate: str) -> int:
    west = _rows(root, "parking-westlake",
                 f"SELECT count(*) FROM sessions WHERE plate = '{plate}'")[0][0]
    qian = _rows(root, "parking-qiantang", "SELECT count(*) FROM tickets WHERE "
                 f"replace(car_plate, '-', '') = '{plate}'")[0][0]
    return int(west) + int(qian)


@pytest.fixture(scope="module")
def people(served: RunningHub) -> dict[str, dict[str, Any]]:
    """Three residents: two drivers whose plates have stays, and a patient with a credit
    record and visits (who may also own a vehicle)."""
    root = served.city_dir
    owners: dict[str, list[str]] = {}
    for plate, owner in _rows(root, "traffic-police",
                              "SELECT plate, owner_id_number FROM vehicles ORDER BY plate"):
        owners.setdefault(owner, []).append(plate)
    drivers = [o for o, ps in sorted(owners.items()) if any(_stays(root, p) for p in ps)]
    credit = {r[0] for r in _rows(root, "credit-bureau",
                                  "SELECT id_number FROM scores WHERE score >= 600")}
    visits = dict(_rows(root, "health", "SELECT id_number, count(*) FROM visits GROUP BY 1"))
    patient = next(i for i in sorted(credit) if i in visits and i not in drivers[:2])
    out = {}
    for name, idn in (("a", drivers[0]), ("b", drivers[1]), ("c", patient)):
        out[name] = {"id": idn, "plates": owners.get(idn, []), "visits": visits.get(idn, 0)}
    assert out["a"]["plates"] and out["b"]["plates"]
    return out


def _token(served: RunningHub, idn: str, **claims: Any) -> str:
    city = load_city(served.city_dir)
    assert city.people is not None
    return idp.mint(served.city_dir, city.people, idn, **claims)


def _as_person(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _as(served: RunningHub, member: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {served.token(member)}"}


def _sessions(served: RunningHub, headers: dict[str, str], plate: str) -> httpx.Response:
    return httpx.get(f"{served.url}/scenarios/parking/sessions", params={"plate": plate},
                     headers=headers, timeout=60)


def _eligibility(served: RunningHub, headers: dict[str, str], idn: str) -> httpx.Response:
    return httpx.post(f"{served.url}/scenarios/medical/eligibility", json={"id_number": idn},
                      headers=headers, timeout=60)


# --- a person reads their own data, and nobody else's ----------------------------------------

def test_a_driver_reads_their_own_stays_and_no_one_elses(served: RunningHub,
                                                         people: dict[str, Any]) -> None:
    a, b = people["a"], people["b"]
    token = _token(served, a["id"])
    for plate in a["plates"]:
        r = _sessions(served, _as_person(token), plate)
        assert r.status_code == 200, r.text
        assert len(r.json()["sessions"]) == _stays(served.city_dir, plate)
    # written another way, the same plate (normalised by the hub, not by the scenario)
    p = a["plates"][0]
    assert _sessions(served, _as_person(token), f"{p[:2]}-{p[2:]}").status_code == 200
    ledger = served.node.ledger
    assert ledger is not None
    for plate in b["plates"]:
        before = ledger.size
        r = _sessions(served, _as_person(token), plate)
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "not_your_data"
        recorded = [httpx.get(f"{served.url}/v1/ledger/entries/{i}", timeout=30,
                              headers=_as(served, "auditor")).json()
                    for i in range(before, ledger.size)]
        assert [(e["kind"], e["caller"], e["on_behalf_of"], e["outcome"]) for e in recorded] \
            == [("refusal", "app-parking", "~person", "not_your_data")]
        assert plate not in str(recorded) and a["id"] not in str(recorded)
    # people may not call what admits no people (the gates' and cockpits' services)
    r = httpx.get(f"{served.url}/scenarios/parking/settlement", params={"day": "2026-01-01"},
                  headers=_as_person(token), timeout=60)
    assert r.status_code == 403 and r.json()["error"]["code"] == "caller_not_declared"


def test_eligibility_needs_consent_and_ends_with_its_withdrawal(served: RunningHub,
                                                                 people: dict[str, Any]) -> None:
    c, a = people["c"], people["a"]
    token = _token(served, c["id"])
    me = _as_person(token)
    r = _eligibility(served, me, c["id"])
    assert r.status_code == 403 and r.json()["error"]["code"] == "consent_required", r.text
    given = httpx.post(f"{served.url}/v1/me/consents", headers=me, timeout=30, json={
        "scenario": "app-medical", "service": "eligibility", "days": 7})
    assert given.status_code == 200, given.text
    consent = given.json()["consent"]
    r = _eligibility(served, me, c["id"])
    assert r.status_code == 200, r.text
    assert r.json()["eligible"] is True and r.json()["earlier_visits"] == c["visits"]
    other = _eligibility(served, me, a["id"])  # someone else's id number
    assert other.status_code == 403 and other.json()["error"]["code"] == "not_your_data"
    listed = httpx.get(f"{served.url}/v1/me/consents", headers=me, timeout=30).json()
    assert [x["consent"] for x in listed["consents"]] == [consent]
    # another person cannot withdraw it, nor see it
    other_me = _as_person(_token(served, a["id"]))
    assert httpx.delete(f"{served.url}/v1/me/consents/{consent}", headers=other_me,
                        timeout=30).status_code == 400
    assert httpx.get(f"{served.url}/v1/me/consents", headers=other_me,
                     timeout=30).json()["consents"] == []
    w = httpx.delete(f"{served.url}/v1/me/consents/{consent}", headers=me, timeout=30)
    assert w.status_code == 200, w.text
    r = _eligibility(served, me, c["id"])
    assert r.status_code == 403 and r.json()["error"]["code"] == "consent_required"
    # a consent to what asks none is refused
    bad = httpx.post(f"{served.url}/v1/me/consents", headers=me, timeout=30, json={
        "scenario": "app-parking", "service": "settlement"})
    assert bad.status_code == 400


def test_bad_tokens_are_refused(served: RunningHub, people: dict[str, Any]) -> None:
    from joserfc import jwt
    from joserfc.jwk import ECKey, OctKey

    idn = people["a"]["id"]
    plate = people["a"]["plates"][0]
    stranger = ECKey.import_key(ECKey.generate_key("P-256").as_dict(private=True)
                                | {"kid": idp.signing_key(served.city_dir).kid})
    now = int(time.time())
    city = load_city(served.city_dir)
    assert city.people is not None
    s = city.people
    body = {"iss": s.issuer, "aud": s.audience, "iat": now, "exp": now + 600,
            s.id_claim: idn}
    hs = OctKey.import_key(b"k" * 32)
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = json.dumps({"alg": "none", "typ": "JWT"}).encode()
    unsigned = f"{b64(header)}.{b64(json.dumps(body).encode())}."
    bad = {
        "another key, same kid": _token(served, idn, key=stranger),
        "expired": _token(served, idn, iat=now - 7200, exp=now - 3600),
        "another audience": _token(served, idn, aud="another-hub"),
        "another issuer": _token(served, idn, iss="https://id.elsewhere.example"),
        "no id number": _token(served, idn, resident_id=None),
        "not yet valid": _token(served, idn, nbf=now + 3600, exp=now + 4000),
        "lives too long": _token(served, idn, exp=now + 30 * 86400),
        "alg none": unsigned,
        "HS256 with a guessed key": jwt.encode({"alg": "HS256"}, body, hs),
        "garbage": "eyJhbGciOi.eyJpc3Mi.c2ln",
    }
    for why, token in bad.items():
        for r in (httpx.get(f"{served.url}/v1/me/usage", headers=_as_person(token),
                            timeout=30),
                  _sessions(served, _as_person(token), plate)):
            assert r.status_code == 401, (why, r.status_code, r.text[:200])
            assert r.json()["error"]["code"] == "unauthenticated"
            assert token not in r.text and idn not in r.text  # nothing of the token echoed
    # the provider's JWKS, public, holds public keys only
    keys = httpx.get(f"{served.url}/demo/idp/jwks.json", timeout=30).json()["keys"]
    assert keys and all("d" not in k for k in keys)
    # a good ID token is no member token, and a member token is no ID token
    good = _token(served, idn)
    assert httpx.get(f"{served.url}/v1/catalog", headers=_as_person(good),
                     timeout=30).status_code == 401
    assert httpx.post(f"{served.url}/v1/query", headers=_as_person(good), timeout=30, json={
        "sql": "SELECT 1", "purpose": "x"}).status_code == 401
    assert httpx.get(f"{served.url}/v1/me/usage", headers=_as(served, "cockpit-city"),
                     timeout=30).status_code == 401


def test_only_a_scenario_admitting_people_may_forward_a_persons_token(
        served: RunningHub, people: dict[str, Any]) -> None:
    """A member cannot act for a person by forwarding their token: only a scenario member
    whose file admits people, and then narrowed to that person."""
    a, b = people["a"], people["b"]
    token = _token(served, a["id"])
    sql = f"SELECT count(*) AS n FROM parking_westlake.sessions WHERE plate = '{a['plates'][0]}'"
    for member in ("cockpit-city", "app-traffic", "traffic-police"):
        r = httpx.post(f"{served.url}/v1/query", timeout=30, json={
            "sql": sql, "purpose": "convenient-parking"},
            headers={**_as(served, member), "Zhongshu-On-Behalf-Of-Person": token})
        assert r.status_code == 403 and r.json()["error"]["code"] == "on_behalf_refused", \
            (member, r.text)
    # app-parking forwarding the token directly: narrowed to the person, whatever the SQL
    asks = {
        f"SELECT count(*) AS n FROM parking_westlake.sessions WHERE plate = "
        f"'{a['plates'][0]}'": 200,
        f"SELECT count(*) AS n FROM parking_westlake.sessions WHERE plate = "
        f"'{b['plates'][0]}'": 403,
        "SELECT count(*) AS n FROM parking_westlake.sessions": 403,
        f"SELECT count(*) AS n FROM parking_westlake.sessions WHERE plate = "
        f"'{a['plates'][0]}' OR 1 = 1": 403,
        f"WITH s AS (SELECT * FROM parking_westlake.sessions) SELECT count(*) FROM s "
        f"WHERE plate = '{a['plates'][0]}'": 403,
        f"SELECT count(*) FROM parking_westlake.sessions s JOIN parking_qiantang.tickets t "
        f"ON s.plate = t.car_plate WHERE s.plate = '{a['plates'][0]}'": 403,
        f"SELECT count(*) AS n FROM parking_westlake.sessions WHERE plate = "
        f"'{a['plates'][0]}' AND garage_no <> '{b['plates'][0]}'": 403,
    }
    for q, want in asks.items():
        r = httpx.post(f"{served.url}/v1/query", timeout=30, json={
            "sql": q, "purpose": "convenient-parking"},
            headers={**_as(served, "app-parking"), "Zhongshu-On-Behalf-Of-Person": token})
        assert r.status_code == want, (q, r.text[:300])
        if want == 403:
            assert r.json()["error"]["code"] == "not_your_data", (q, r.text[:300])


# --- who used my data ------------------------------------------------------------------------

def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _root_from(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes | None:
    """RFC 9162, 2.1.3.2: the root an inclusion proof leads to, or None."""
    if index >= size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def _checkpoint(note: str, vkey: str) -> tuple[int, bytes]:
    """Size and root of a C2SP checkpoint whose log signature verifies under ``vkey``."""
    body, _, sigs = note.partition("\n\n")
    body += "\n"
    name, key_hash, key_b64 = vkey.split("+", 2)  # base64 may hold "+" too
    raw = base64.b64decode(key_b64)
    assert raw[0] == 1  # Ed25519
    public = Ed25519PublicKey.from_public_bytes(raw[1:])
    for line in sigs.splitlines():
        if not line.startswith("\u2014 "):
            continue
        who, b64 = line[2:].rsplit(" ", 1)
        sig = base64.b64decode(b64)
        if who == name and sig[:4].hex() == key_hash:
            public.verify(sig[4:], body.encode())  # raises if the signature is wrong
            lines = body.splitlines()
            return int(lines[1]), base64.b64decode(lines[2])
    raise AssertionError("no signature of the log's key on the checkpoint")


def test_each_person_sees_exactly_the_uses_of_their_data(served: RunningHub,
                                                         people: dict[str, Any]) -> None:
    ledger = served.node.ledger
    assert ledger is not None
    a, b, c = people["a"], people["b"], people["c"]
    tokens = {k: _token(served, people[k]["id"]) for k in people}
    mine: dict[str, set[int]] = {k: set() for k in people}
    nobody: set[int] = set()
    first = ledger.size  # the entries of this test's actions start here

    def about(who: str | None, action: Any) -> httpx.Response:
        # each action appends its entries before it answers, so the entries between the
        # sizes before and after are the action's (nothing else runs on this hub)
        before = ledger.size
        r: httpx.Response = action()
        (mine[who] if who else nobody).update(range(before, ledger.size))
        return r

    def query(member: str, sql: str, purpose: str) -> httpx.Response:
        return httpx.post(f"{served.url}/v1/query", headers=_as(served, member), timeout=60,
                          json={"sql": sql, "purpose": purpose})

    pa, pb = a["plates"][0], b["plates"][0]
    # a member looks a plate up by equality (on its pseudonym), written as the operator does
    about("a", lambda: query("app-parking", "SELECT count(*) AS n FROM parking_westlake."
                             f"sessions WHERE plate = '{pa[:2]}-{pa[2:]}'", "convenient-parking"))
    # the owner, through a CTE and a renamed column
    about("b", lambda: query("traffic-police", "WITH v AS (SELECT plate AS p, vehicle_type "
                             "FROM traffic.vehicles) SELECT vehicle_type FROM v WHERE p = "
                             f"'{pb.lower()}'", "traffic-management"))
    # the exit gate, through the parking scenario
    about("a", lambda: _sessions(served, _as(served, "gate-westlake"), pa))
    # a hospital, through the pay-once scenario
    about("c", lambda: _eligibility(served, _as(served, "hospital-h01"), c["id"]))
    # a cockpit trying a driver's plate: refused (no grant on plates), and still recorded
    r = about("b", lambda: query("cockpit-city", "SELECT count(*) FROM traffic.passages "
                                 f"WHERE plate = '{pb}'", "city-operations"))
    assert r.status_code == 403
    # the driver themselves, and a try at another's plate (shown to that other, too)
    about("a", lambda: _sessions(served, _as_person(tokens["a"]), pa))
    before = ledger.size
    r = _sessions(served, _as_person(tokens["a"]), pb)
    assert r.status_code == 403
    tried = set(range(before, ledger.size))
    mine["a"] |= tried
    mine["b"] |= tried
    # a query about nobody
    about(None, lambda: query("cockpit-city", "SELECT count(*) FROM traffic.segments",
                              "city-operations"))
    # under a declared exclusion: not listed to the person
    about(None, lambda: query("traffic-police", "SELECT count(*) FROM traffic.passages WHERE "
                              f"plate = '{pa}'", "investigation"))
    excluded = max(nobody)
    for k in people:  # the registry lookups of signing in (each person once, cached)
        about(k, lambda k=k: httpx.get(f"{served.url}/v1/me/consents",
                                       headers=_as_person(tokens[k]), timeout=30))
    size = served.wait_checkpoint()
    vkey = httpx.get(f"{served.url}/v1/ledger/key", timeout=30).json()["log"]
    for k in people:
        got = httpx.get(f"{served.url}/v1/me/usage", headers=_as_person(tokens[k]),
                        params={"limit": 3}, timeout=30)
        assert got.status_code == 200, got.text
        pages = [got.json()]
        while pages[-1]["next"] is not None:  # paging as the owners' usage
            pages.append(httpx.get(f"{served.url}/v1/me/usage", headers=_as_person(tokens[k]),
                                   params={"limit": 3, "after": pages[-1]["next"]},
                                   timeout=30).json())
        seen = [e for p in pages for e in p["entries"]]
        assert len(seen) == len({e["index"] for e in seen})  # pages do not overlap
        shown = {e["index"] for e in seen if first <= e["index"] < size}
        expected = {i for i in mine[k] if i < size}
        assert shown == expected, (k, sorted(shown ^ expected))
        assert excluded not in shown
        tags = pages[0]["subjects"]
        for p in pages:
            ckpt_size, root = _checkpoint(p["checkpoint"], vkey)
            for e in p["entries"]:
                body = e["canonical"].encode()
                assert e["receipt"]["entry_hash"] == _leaf(body).hex()
                # the entry is about them: one of their tags, blinded by the entry's nonce
                nonce = e["entry"]["subject_nonce"]
                assert {hashlib.sha256(f"{nonce}:{t}".encode()).hexdigest() for t in tags} & \
                    set(e["entry"]["subjects"]), e["index"]
                assert _root_from(e["index"], ckpt_size, _leaf(body),
                                  [bytes.fromhex(h) for h in e["proof"]]) == root, e["index"]
                for forbidden in (people[k]["id"], *people[k]["plates"]):
                    assert forbidden not in e["canonical"]  # tags, never identifiers
        declared = pages[0]["exclusions"]
        assert [x["member"] for x in declared["declared"]] == ["traffic-police"]
        rec = httpx.get(f"{served.url}/v1/ledger/entries/{declared['recorded_at']}",
                        headers=_as(served, "auditor"), timeout=30).json()
        assert rec["action"] == "people.exclusions"
    # no two entries hold the same blinded value: entries about a person cannot be linked by
    # whoever reads them (owners of different datasets, say)
    held = [v for i in range(first, size) for v in httpx.get(
        f"{served.url}/v1/ledger/entries/{i}", headers=_as(served, "auditor"),
        timeout=30).json().get("subjects", [])]
    assert held and len(held) == len(set(held))
    # the excluded entry still names its subject for auditors, apart
    ex = httpx.get(f"{served.url}/v1/ledger/entries/{excluded}", headers=_as(served, "auditor"),
                   timeout=30).json()
    assert ex["subjects_excluded"] and "subjects" not in ex
