"""Browser sessions: a token exchanged once for an HttpOnly, SameSite=Strict cookie that
then identifies the member for the protocol — and nothing more."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.conftest import RunningHub
from tests.test_cli import zs
from zhongshu.errors import Unauthenticated
from zhongshu.policy.identity import Authenticator, issue_token, token_hash
from zhongshu.protocol.sessions import Sessions
from zhongshu.stores.memory import MemorySessionStore

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


def test_a_revoked_tokens_session_ends_at_once(hub: RunningHub) -> None:
    token = issue_token(hub.service.catalog, "cockpit-city", label="browser")
    keep = issue_token(hub.service.catalog, "cockpit-city", label="another browser")
    sql = {"sql": "SELECT count(*) AS n FROM civil.districts", "purpose": P}
    with httpx.Client(base_url=hub.url, timeout=30) as c, \
            httpx.Client(base_url=hub.url, timeout=30) as other:
        assert c.post("/v1/session", json={"token": token}).status_code == 200
        assert other.post("/v1/session", json={"token": keep}).status_code == 200
        assert c.post("/v1/query", json=sql).status_code == 200
        # the operator revokes that one token, from another process (the command line)
        res = zs("members", "revoke", "cockpit-city", "--id", token_hash(token)[:16],
                 "--dir", str(hub.city_dir))
        assert res.returncode == 0 and "revoked 1 token" in res.stdout, res.stderr
        r = c.post("/v1/query", json=sql)  # the very next request: no cache, no timer
        assert r.status_code == 401, r.text
        assert "revoked or expired" in r.json()["error"]["message"]
        assert c.get("/v1/session").status_code == 401
        assert c.get("/v1/catalog").status_code == 401
        # a session of another token of the same member goes on
        assert other.post("/v1/query", json=sql).status_code == 200


def test_revoking_a_member_ends_all_its_sessions(own_hub: RunningHub) -> None:
    tokens = [issue_token(own_hub.service.catalog, "cockpit-xihu") for _ in range(2)]
    clients = [httpx.Client(base_url=own_hub.url, timeout=30) for _ in tokens]
    try:
        for c, t in zip(clients, tokens, strict=True):
            assert c.post("/v1/session", json={"token": t}).status_code == 200
            assert c.get("/v1/catalog").status_code == 200
        res = zs("members", "revoke", "cockpit-xihu", "--dir", str(own_hub.city_dir))
        assert res.returncode == 0, res.stderr
        assert [c.get("/v1/catalog").status_code for c in clients] == [401, 401]
    finally:
        for c in clients:
            c.close()


def test_a_session_never_outlives_its_tokens_expiry(hub: RunningHub) -> None:
    """Checked where the session is used (an oracle: the store's own token row): a token
    that expired ends the session though the session's 12 h are not over."""
    catalog = hub.service.catalog
    token = issue_token(catalog, "cockpit-city", expires_at=time.time() + 3600)
    sessions = Sessions(MemorySessionStore())
    sid, _ = sessions.open("cockpit-city", token_hash(token))
    hit = sessions.get(sid)
    assert hit is not None
    authn = Authenticator(catalog)
    assert authn.token_live(hit.member, hit.token_hash).name == "cockpit-city"
    with pytest.raises(Unauthenticated, match="revoked or expired"):
        authn.token_live("cockpit-xihu", hit.token_hash)  # another member's claim
    expired = issue_token(catalog, "cockpit-city", expires_at=time.time() - 1)
    with pytest.raises(Unauthenticated, match="revoked or expired"):
        authn.token_live("cockpit-city", token_hash(expired))
