"""Who is calling: the FastAPI dependency every authenticated route takes.

A request names its caller by an RFC 9421 signature (required for members that must sign,
see :func:`zhongshu.policy.identity.must_sign`), a bearer token, or a browser session cookie
(accepted only from the hub's own pages for anything but GET/HEAD). The caller is kept in
``request.state.caller`` so that a refusal can be recorded under its name.

A scenario member may name the caller it acts for (``Zhongshu-On-Behalf-Of``); the name is
checked by :func:`zhongshu.policy.behalf.acting_for` on every route, so no route can take
it unchecked, and a refusal is recorded under the scenario member's name. A scenario member
acting for a *person* forwards the person's ID token instead
(``Zhongshu-On-Behalf-Of-Person``): the hub verifies it itself (``protocol.people``), so a
scenario cannot name a person who did not sign in, and every query it then makes is
narrowed to that person (``policy.subjects.check_person``).

People never authenticate here: an ID token sent as a bearer to a member route is not a
member token, so it is ``401``.

The three ways in are declared as the OpenAPI document's security schemes (``BEARER``,
``SIGNATURE``, ``SESSION``: any one of them admits a caller), through FastAPI's security
dependencies, so generated clients know how to authenticate. Those dependencies only
describe; the credentials are read and checked here.
"""

import dataclasses
import re
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

from fastapi import Request, Security
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPBearer

from zhongshu.client import ON_BEHALF_OF, ON_BEHALF_OF_PERSON
from zhongshu.errors import BehalfRefused, Unauthenticated
from zhongshu.policy.behalf import acting_for
from zhongshu.policy.identity import Authenticator, Caller
from zhongshu.policy.subjects import PERSON
from zhongshu.protocol.sessions import COOKIE, Sessions
from zhongshu.protocol.signatures import Message, Verifier

if TYPE_CHECKING:
    from zhongshu.protocol.people import People


BEARER = HTTPBearer(
    scheme_name="bearer", auto_error=False, bearerFormat="zs_…",
    description="A member token (`Authorization: Bearer <token>`); `zhongshu members token "
                "NAME` issues one. Accepted for every member except those of kind `hub`.")
SIGNATURE = APIKeyHeader(
    name="Signature-Input", scheme_name="httpSignature", auto_error=False,
    description="HTTP Message Signatures (RFC 9421) with the member's Ed25519 key "
                "(`alg=\"ed25519\"`): send `Signature-Input` and `Signature` (one signature, "
                "with `created`, `keyid` and `nonce`) covering `@method`, `@authority` and "
                "`@path`, `@query` when there is a query string and `content-digest` (RFC "
                "9530) when there is a body. Required for members of kind `hub`, optional "
                "for others.")
SESSION = APIKeyCookie(
    name=COOKIE, scheme_name="session", auto_error=False,
    description="A browser session (HttpOnly, SameSite=Strict), made by `POST /v1/session` "
                "from a member token; accepted for anything but GET/HEAD only from the hub's "
                "own pages.")

ID_TOKEN = HTTPBearer(
    scheme_name="idToken", auto_error=False, bearerFormat="JWT",
    description="A person's OpenID Connect ID token from the city's identity provider "
                "(`Authorization: Bearer <JWT>`), for the people's routes (`/v1/me/…`) and "
                "the scenario services that admit people.")


_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,99}$")


def _for_peer_caller(who: Caller, named: str, covered: str) -> Caller:
    """A peer hub's request made for one of its own callers (``named``, a member *of that
    hub*): recorded in the ledger entry as ``on_behalf_of``; it changes no right — the peer
    hub reads under its own grants here.

    Raises:
        BehalfRefused: the signature does not cover the header, or the name is not a name.
    """
    if f'"{ON_BEHALF_OF.lower()}"' not in covered:
        raise BehalfRefused("a peer hub's Zhongshu-On-Behalf-Of must be covered by its "
                            "request's signature")
    if not _NAME.fullmatch(named):
        raise BehalfRefused("Zhongshu-On-Behalf-Of names a member (lower-case letters, "
                            "digits, - and _)")
    return dataclasses.replace(who, on_behalf_of=named)


class Authentication:
    """The ``caller`` dependency: resolves a request to a :class:`Caller` or raises
    ``Unauthenticated`` (401)."""

    def __init__(self, authn: Authenticator, verifier: Verifier, sessions: Sessions) -> None:
        self.authn = authn
        self.verifier = verifier
        self.sessions = sessions
        self.people: People | None = None  # set when the city's people may sign in

    async def __call__(self, request: Request,
                       _bearer: Annotated[object, Security(BEARER)] = None,
                       _signed: Annotated[object, Security(SIGNATURE)] = None,
                       _session: Annotated[object, Security(SESSION)] = None) -> Caller:
        # the three parameters document the schemes; the request is read as it came
        return await self.resolve(request, request.headers.get("authorization"))

    async def resolve(self, request: Request, authorization: str | None) -> Caller:
        """The caller of ``request`` (whose ``Authorization`` header is ``authorization``).

        Raises:
            Unauthenticated: no valid identity.
            BehalfRefused: it names a caller it may not act for.
        """
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
        persons = headers.getlist(ON_BEHALF_OF_PERSON)
        if persons:
            if named or len(persons) > 1:
                raise BehalfRefused("name one caller, once: Zhongshu-On-Behalf-Of or "
                                    "Zhongshu-On-Behalf-Of-Person")
            who = await self._for_person(who, persons[0])
            request.state.caller = who
        elif named:
            if len(named) > 1:
                raise BehalfRefused("name one caller in Zhongshu-On-Behalf-Of, once")
            if who.member.kind == "hub":
                who = _for_peer_caller(who, named[0], getattr(request.state, "covered", ""))
            else:
                who = acting_for(self.authn.catalog, who, named[0])
            request.state.caller = who
        return who

    async def _for_person(self, who: Caller, token: str) -> Caller:
        """``who`` (a scenario member admitting people) acting for the person whose ID
        token it forwards.

        Raises:
            BehalfRefused: not a scenario member, its file admits no people, this city has
                no identity provider, or the ID token is not valid.
        """
        mf = self.authn.catalog.city.members.get(who.name)
        if who.member.kind != "scenario" or mf is None or \
                not any(r.admits_people() for r in mf.callers):
            raise BehalfRefused(f"member `{who.name}` may not act for people (only scenario "
                                "members whose `[[callers]]` say `people = true`)")
        if self.people is None:
            raise BehalfRefused("this city has no identity provider for people (`[people]` "
                                "in city.toml)")
        try:
            person = await self.people.tokens.verify(token)
        except Unauthenticated as e:
            raise BehalfRefused(f"the person's ID token: {e.message}") from None
        scope = await self.people.scope(person)
        return dataclasses.replace(who, on_behalf_of=PERSON, person=scope)

    async def _signed(self, request: Request, authorization: str | None) -> Caller:
        headers = request.headers
        body = await request.body()
        msg = Message(request.method, request.url.path, request.url.query,
                      headers.get("host", ""), dict(headers.items()))
        name, signed = self.verifier.verify(msg, body)
        request.state.covered = signed.params  # the components it covers, serialised
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
