"""Who is calling: the FastAPI dependency every authenticated route takes.

A request names its caller by an RFC 9421 signature (required for members that must sign,
see :func:`zhongshu.policy.identity.must_sign`), a bearer token, or a browser session cookie
(accepted only from the hub's own pages for anything but GET/HEAD). The caller is kept in
``request.state.caller`` so that a refusal can be recorded under its name.

A scenario member may name the caller it acts for (``Zhongshu-On-Behalf-Of``); the name is
checked by :func:`zhongshu.policy.behalf.acting_for` on every route, so no route can take
it unchecked, and a refusal is recorded under the scenario member's name.
"""

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Header, Request

from zhongshu.client import ON_BEHALF_OF
from zhongshu.errors import BehalfRefused, Unauthenticated
from zhongshu.policy.behalf import acting_for
from zhongshu.policy.identity import Authenticator, Caller
from zhongshu.protocol.sessions import COOKIE, Sessions
from zhongshu.protocol.signatures import Message, Verifier


class Authentication:
    """The ``caller`` dependency: resolves a request to a :class:`Caller` or raises
    ``Unauthenticated`` (401)."""

    def __init__(self, authn: Authenticator, verifier: Verifier, sessions: Sessions) -> None:
        self.authn = authn
        self.verifier = verifier
        self.sessions = sessions

    async def __call__(self, request: Request,
                       authorization: Annotated[str | None, Header()] = None) -> Caller:
        # async: a token lookup is a dict hit (or one indexed SQLite read), not worth a thread
        headers = request.headers
        if "signature-input" in headers:
            who = await self._signed(request, authorization)
        elif not authorization and (cookie := request.cookies.get(COOKIE)):
            who = self._session(request, cookie)
        else:
            who = self.authn.bearer(authorization)
        request.state.caller = who
        named = headers.getlist(ON_BEHALF_OF)
        if named:
            if len(named) > 1:
                raise BehalfRefused("name one caller in Zhongshu-On-Behalf-Of, once")
            who = acting_for(self.authn.catalog, who, named[0])
            request.state.caller = who
        return who

    async def _signed(self, request: Request, authorization: str | None) -> Caller:
        headers = request.headers
        body = await request.body()
        msg = Message(request.method, request.url.path, request.url.query,
                      headers.get("host", ""), dict(headers.items()))
        name, signed = self.verifier.verify(msg, body)
        who = self.authn.member(name)
        if authorization and self.authn.authenticate(authorization).name != name:
            raise Unauthenticated("the bearer token and the signature name different members")
        return Caller(who.member, signature=signed.signature, key_id=signed.key_id)

    def _session(self, request: Request, cookie: str) -> Caller:
        hit = self.sessions.get(cookie)
        if hit is None:
            raise Unauthenticated("the session has ended or expired; sign in again")
        try:
            who = self.authn.token_live(hit.member, hit.token_hash)
        except Unauthenticated:
            self.sessions.close(cookie)  # it cannot come back: its token is not live
            raise
        origin = request.headers.get("origin")
        if request.method not in ("GET", "HEAD") and origin and \
                urlsplit(origin).netloc != request.headers.get("host"):
            raise Unauthenticated("a session cookie is accepted only from the hub's own pages")
        return who
