"""``/v1/session``: a member token exchanged once for an HttpOnly, SameSite=Strict cookie."""

import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response

from zhongshu.policy.identity import Caller, token_hash
from zhongshu.protocol.contract import errors as answers
from zhongshu.protocol.models import SessionIn, SessionOut
from zhongshu.protocol.routes import Parts
from zhongshu.protocol.sessions import COOKIE, SESSION_S

log = logging.getLogger("zhongshu.protocol")


def add_routes(app: FastAPI, parts: Parts) -> None:
    """Mount sign-in, who-am-I and sign-out."""
    sessions, errors = parts.sessions, parts.errors

    @app.post("/v1/session", response_model=SessionOut, responses=answers(401),
              tags=["identity"])
    def sign_in(body: SessionIn, response: Response, request: Request) -> dict[str, Any]:
        """Exchange a member token for an HttpOnly, SameSite=Strict session cookie (for
        browsers: the token is sent once, in the body, and never kept by the page)."""
        who = parts.authn.bearer(f"Bearer {body.token}")
        sid, expires = sessions.open(who.name, token_hash(body.token.strip()))
        response.set_cookie(COOKIE, sid, max_age=SESSION_S, path="/", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        log.info("session opened for %s", who.name)
        return {"member": who.name, "kind": who.member.kind,
                "title": who.member.title, "expires": expires}

    @app.get("/v1/session", response_model=SessionOut, responses=errors, tags=["identity"])
    def session(request: Request,
                who: Annotated[Caller, Depends(parts.caller)]) -> dict[str, Any]:
        """Who the caller is (for a page: whose session this is, until when)."""
        hit = sessions.get(request.cookies.get(COOKIE, ""))
        return {"member": who.name, "kind": who.member.kind,
                "title": who.member.title,
                "expires": hit.expires if hit else None}

    @app.delete("/v1/session", status_code=204, tags=["identity"])
    def sign_out(request: Request, response: Response) -> None:
        """End the browser session (sign out)."""
        if cookie := request.cookies.get(COOKIE):
            sessions.close(cookie)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
