"""The door of every scenario route: who calls, and whether the scenario's member file lets
them call this service.

``ScenarioDoor.guard(name, member, services)`` is a FastAPI dependency that the scenarios'
mount (:func:`zhongshu.scenarios.mount`) puts on *every* route of a scenario's router, so no
route can be left open by forgetting it. On each request it

1. authenticates the caller exactly as the protocol does (the same
   :class:`~zhongshu.protocol.auth.Authentication`: bearer token, session cookie, RFC 9421
   signature) — ``401 unauthenticated`` without credentials, never recorded;
2. finds the service (the first path segment of the *route* under ``/scenarios/<name>/``,
   not of the URL as sent) and the ``[[callers]]`` table of the scenario member that admits
   the caller to it (:func:`zhongshu.config.callers.rule_for`) — none: ``403
   caller_not_declared``, recorded on the ledger naming the caller and the scenario member;
3. counts the call against the table's ``rate_limit`` for this caller and service alone
   (the hub's rate counters; one caller using up its calls leaves the others theirs) —
   over it: ``429 rate_limited``, recorded;
4. returns the caller's name: the scenario names it in every request it then makes to the
   hub (``Zhongshu-On-Behalf-Of``), which the hub checks again (``policy.behalf``).

A person (an ID token as the bearer, ``protocol.people``) is admitted only by a table with
``people = true`` for the service (never by ``members``, ``kinds`` or ``roles``), once their
token is verified — an invalid one is ``401``, never recorded — and, where the table says
``consent = true``, while their consent is in force (``403 consent_required``, recorded with
their subject tag). The door then returns the person's token (behind
:data:`zhongshu.client.PERSON_PREFIX`), which the scenario's client forwards to the hub,
which verifies it again and narrows every answer to that person.
"""

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated

from fastapi import Request, Security

from zhongshu.catalog.catalog import Catalog
from zhongshu.client import PERSON_PREFIX
from zhongshu.config.callers import CallerRule, check_services, people_rule, rule_for
from zhongshu.errors import CallerNotDeclared, ConsentRequired, RateLimited
from zhongshu.protocol.auth import BEARER, ID_TOKEN, SESSION, SIGNATURE, Authentication
from zhongshu.protocol.people import bearer_of, looks_like_jwt
from zhongshu.stores import RateCounters

log = logging.getLogger("zhongshu.scenarios")
Guard = Callable[..., Awaitable[str]]


def service_of(route_path: str, prefix: str) -> str:
    """The service a route belongs to: the first segment of its path under ``prefix`` (the
    route's path may carry the router's prefix or not, as FastAPI versions differ).

    >>> service_of("/scenarios/parking/ngsi-ld/v1/entities", "/scenarios/parking")
    'ngsi-ld'
    >>> service_of("/eligibility", "/scenarios/medical")
    'eligibility'
    """
    return route_path.removeprefix(prefix).lstrip("/").split("/", 1)[0]


class ScenarioDoor:
    """Authenticates scenario callers and admits those their scenario member declares."""

    def __init__(self, caller: Authentication, catalog: Catalog, rates: RateCounters) -> None:
        self.caller = caller
        self.catalog = catalog
        self.rates = rates

    def rules(self, member: str) -> list[CallerRule]:
        """The ``[[callers]]`` tables of a scenario member (none: nobody may call it)."""
        mf = self.catalog.city.members.get(member)
        return list(mf.callers) if mf is not None else []

    def guard(self, name: str, member: str, services: Iterable[str]) -> Guard:
        """The dependency for every route of scenario ``name`` (mounted at
        ``/scenarios/<name>/``, acting as ``member``): the admitted caller's name.

        Raises:
            ConfigError: the member's file declares a service the scenario does not offer.
        """
        offered = set(services)
        check_services(self.catalog.city, member, offered)
        closed = offered - {s for r in self.rules(member) for s in r.services}
        if closed:
            log.info("scenario member %s declares no callers for %s: closed to everyone",
                     member, ", ".join(sorted(closed)))
        prefix = f"/scenarios/{name}"
        authenticate = self.caller

        async def admitted(request: Request,
                           _bearer: Annotated[object, Security(BEARER)] = None,
                           _signed: Annotated[object, Security(SIGNATURE)] = None,
                           _session: Annotated[object, Security(SESSION)] = None,
                           _person: Annotated[object, Security(ID_TOKEN)] = None) -> str:
            authorization = request.headers.get("authorization")
            request.state.scenario = member
            # the route that matched, not the URL as sent: no spelling of a path picks another
            service = service_of(request.scope["route"].path, prefix)
            credential = bearer_of(authorization)
            people = authenticate.people
            if people is not None and credential is not None and looks_like_jwt(credential) \
                    and "signature-input" not in request.headers:
                return await self._person(request, credential, name, member, service)
            who = await authenticate.resolve(request, authorization)
            rule = rule_for(self.rules(member), service, who.name, who.member.kind,
                            who.member.roles)
            if rule is None:
                raise CallerNotDeclared(
                    f"member `{who.name}` is not a declared caller of the `{service}` service "
                    f"of scenario `{name}`; the scenario's member `{member}` declares its "
                    "callers in its member file (`[[callers]]`)")
            if rule.rate_limit is not None:
                retry = self.rates.hit(f"scenario:{member}:{service}:{who.name}",
                                       rule.rate_limit, 60.0, time.time())
                if retry is not None:
                    raise RateLimited(f"`{who.name}` may call the `{service}` service of "
                                      f"scenario `{name}` {rule.rate_limit} times per minute; "
                                      f"retry in {retry:.0f} s")
            return who.name

        return admitted

    async def _person(self, request: Request, token: str, name: str, member: str,
                      service: str) -> str:
        """Admit a person to ``service`` of scenario ``name`` (acting as ``member``): the
        value the scenario's client forwards (their token behind ``PERSON_PREFIX``)."""
        people = self.caller.people
        assert people is not None
        person = await people.tokens.verify(token)  # 401 first: nothing recorded for junk
        request.state.person = person.tag
        rule = people_rule(self.rules(member), service)
        if rule is None:
            raise CallerNotDeclared(f"people may not call the `{service}` service of scenario "
                                    f"`{name}`")
        if rule.consent and not people.consented(person, member, service):
            raise ConsentRequired(f"the `{service}` service of scenario `{name}` needs your "
                                  "consent: give it with POST /v1/me/consents "
                                  f"(scenario `{member}`, service `{service}`)")
        if rule.rate_limit is not None:
            retry = self.rates.hit(f"scenario:{member}:{service}:person:{person.tag}",
                                   rule.rate_limit, 60.0, time.time())
            if retry is not None:
                raise RateLimited(f"you may call the `{service}` service of scenario `{name}` "
                                  f"{rule.rate_limit} times per minute; retry in {retry:.0f} s")
        return PERSON_PREFIX + token
