"""Browser sessions: a token exchanged once for an HttpOnly, SameSite=Strict cookie that
then identifies the member for the protocol — and nothing more."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.conftest import RunningHub

P = "city-operations"


@contextmanager
def _sign_in(hub: RunningHub, member: str = "cockpit-city") -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.url, timeout=30) as c:
        r = c.post("/v1/session", json={"token": hub.token(member)})
        assert r.status_code == 200, r.text
        assert r.json()["member"] == member
        yield c


def test_a_session_cookie_is_http_only_strict_and_identifies_the_member(
        hub: RunningHub) -> None:
    with _sign_in(hub) as c:
        header = c.cookies.jar and next(iter(c.cookies.jar))
        assert header and header.name == "zs_session"
        raw = c.post("/v1/session", json={"token": hub.token("cockpit-city")}).headers[
            "set-cookie"].lower()
        assert "httponly" in raw and "samesite=strict" in raw and "path=/" in raw
        assert hub.token("cockpit-city") not in raw
        me = c.get("/v1/session").json()
        assert me["member"] == "cockpit-city" and me["expires"] > 0
        r = c.post("/v1/query", json={"sql": "SELECT count(*) AS n FROM civil.districts",
                                      "purpose": P})
        assert r.status_code == 200 and r.json()["rows"] == [[6]]


def test_a_session_carries_the_members_grants_not_more(hub: RunningHub) -> None:
    with _sign_in(hub, "cockpit-xihu") as c:
        r = c.post("/v1/query", json={"sql": "SELECT district FROM civil.districts",
                                      "purpose": "district-operations"})
        assert r.status_code == 200 and r.json()["rows"] == [["xihu"]]
        r = c.post("/v1/query", json={"sql": "SELECT count(*) FROM health.visits",
                                      "purpose": "district-operations"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_bad_tokens_and_ended_sessions_are_refused(hub: RunningHub) -> None:
    with httpx.Client(base_url=hub.url, timeout=30) as c:
        r = c.post("/v1/session", json={"token": "zs_not_a_token"})
        assert r.status_code == 401 and "set-cookie" not in r.headers
        assert c.post("/v1/session", json={}).status_code == 400
        c.cookies.set("zs_session", "forged")
        r = c.get("/v1/catalog")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    with _sign_in(hub) as c:
        assert c.delete("/v1/session").status_code == 204
        sid = "forgotten"
        for cookie in c.cookies.jar:
            sid = cookie.value
        assert sid == "forgotten"  # the hub told the browser to drop it
    with _sign_in(hub) as c:
        sid = next(iter(c.cookies.jar)).value
        c.delete("/v1/session")
        c.cookies.set("zs_session", sid)  # replaying the ended session
        assert c.get("/v1/catalog").status_code == 401


def test_a_cookie_is_not_accepted_from_another_sites_page(hub: RunningHub) -> None:
    with _sign_in(hub) as c:
        r = c.post("/v1/query", json={"sql": "SELECT 1 AS one", "purpose": P},
                   headers={"Origin": "https://evil.example"})
        assert r.status_code == 401
        assert "hub's own pages" in r.json()["error"]["message"]
        r = c.post("/v1/query", json={"sql": "SELECT 1 AS one", "purpose": P},
                   headers={"Origin": hub.url})
        assert r.status_code == 200
