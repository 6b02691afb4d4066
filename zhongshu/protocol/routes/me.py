"""A person's own endpoints (我的数据谁用了): who used my data, and my consents.

Only a person signed in with the city's identity provider (an ID token as the bearer,
``protocol.people``) may call these; a member token is ``401`` here, as an ID token is on
every member route. A person reads only entries that carry one of *their* subject tags (of
their id number and of the plates registered to them).

* ``GET /v1/me/usage`` — every exchange, refusal and consent about the person, in the shape
  and paging of the owners' ``GET /v1/ledger/usage`` (``entries`` of ``{"index", "entry",
  "proof"}`` against the latest ``checkpoint``, ``next``), each entry also as its exact
  ``canonical`` bytes and its ``receipt``, so the proof can be checked offline; and the
  city's declared
  ``exclusions`` (uses not shown entry by entry), with the index of the entry recording them.
* ``GET /v1/me/consents``, ``POST /v1/me/consents``, ``DELETE /v1/me/consents/{index}`` —
  consents in force, given and withdrawn, each a ledger entry.
"""

import time
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Path, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from zhongshu.errors import NotFound, RateLimited, Unauthenticated
from zhongshu.ledger import Ledger, entry, iso_ms, merkle
from zhongshu.policy.subjects import INDEX
from zhongshu.protocol.auth import ID_TOKEN
from zhongshu.protocol.contract import errors as answers
from zhongshu.protocol.people import People, Person, bearer_of
from zhongshu.protocol.routes.ledger import _ms
from zhongshu.stores import RateCounters

__all__ = ["add_me_routes"]


class ConsentIn(BaseModel):
    scenario: str = Field(max_length=100, description="the scenario member asking consent "
                          "(e.g. `app-medical`)")
    service: str = Field(max_length=100, description="its service (e.g. `eligibility`)")
    days: int = Field(default=30, ge=1, le=366, description="in force for this many days")


WRITES_PER_MINUTE = 20
"""Consents a person may give or withdraw per minute (each is a ledger entry)."""


def add_me_routes(app: FastAPI, people: People, ledger: Ledger, rates: RateCounters,
                  errors: dict[int | str, dict[str, Any]]) -> None:
    """Mount ``/v1/me/usage`` and ``/v1/me/consents``."""

    def writing(who: Person) -> None:
        retry = rates.hit(f"people:{who.tag}:consents", WRITES_PER_MINUTE, 60.0, time.time())
        if retry is not None:
            raise RateLimited(f"you may give or withdraw {WRITES_PER_MINUTE} consents per "
                              f"minute; retry in {retry:.0f} s")

    async def person(request: Request,
                     _token: Annotated[object, Security(ID_TOKEN)] = None) -> Person:
        token = bearer_of(request.headers.get("authorization"))
        if token is None:
            raise Unauthenticated("sign in with the city's identity provider and send its ID "
                                  "token: `Authorization: Bearer <ID token>`")
        who = await people.tokens.verify(token)
        request.state.person = who.tag
        await people.exclusions_recorded()
        return who

    Me = Annotated[Person, Depends(person)]

    @app.get("/v1/me/usage", tags=["people"], responses=errors | answers(400, 404))
    async def usage(who: Me, since: str | None = None,
                    after: Annotated[int, Query(ge=-1, le=2**53 - 1)] = -1,
                    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> dict[str, Any]:
        """Every exchange that touched your identifiers (when, which member, which dataset,
        which purpose, the outcome), at most ``limit`` after index ``after`` (``next``
        continues), each with its inclusion proof in the latest checkpoint; and the declared
        exclusions."""
        tags = people.tags(await people.scope(who))
        return await run_in_threadpool(_usage, tags, since, after, limit)

    def _usage(tags: list[str], since: str | None, after: int, limit: int) -> dict[str, Any]:
        ckpt = ledger.checkpoint() or ledger.publish()
        if ckpt is None:
            raise NotFound("the ledger is empty: no checkpoint yet")
        floor = iso_ms(_ms(since)) if since else ""
        found = sorted({i for t in tags for i in ledger.reading(INDEX + t, after + 1)})
        out: list[dict[str, Any]] = []
        nxt = None
        for idx in found:
            if idx >= ckpt.size:
                break
            if len(out) == limit:
                nxt = out[-1]["index"]
                break
            body = ledger.entry(idx)
            fields = orjson.loads(body) if body is not None else {}
            # the index is a lookup aid, not the authority: the entry itself must carry a tag
            if body is None or not entry.about(fields, tags) or \
                    fields.get("time", "") < floor:
                continue
            out.append({"index": idx, "entry": fields, "canonical": body.decode(),
                        "receipt": {"ledger": ledger.origin, "index": idx,
                                    "entry_hash": merkle.leaf_hash(body).hex()},
                        "proof": [h.hex() for h in ledger.inclusion(idx, ckpt.size)]})
        return {"subjects": tags, "checkpoint": ckpt.text, "entries": out, "next": nxt,
                "exclusions": {"declared": people.declared(),
                               "recorded_at": people.exclusions_index}}

    @app.get("/v1/me/consents", tags=["people"], responses=errors)
    async def consents(who: Me) -> dict[str, Any]:
        """Your consents in force: which scenario's service, until when."""
        return {"consents": await run_in_threadpool(people.consents, who)}

    @app.post("/v1/me/consents", tags=["people"], responses=errors | answers(400, 429))
    async def give(who: Me, body: ConsentIn) -> dict[str, Any]:
        """Consent to a scenario's service about you (recorded on the ledger)."""
        writing(who)
        return await people.give(who, body.scenario, body.service, body.days)

    @app.delete("/v1/me/consents/{index}", tags=["people"],
                responses=errors | answers(400, 429))
    async def withdraw(who: Me, index: Annotated[int, Path(ge=0, le=2**53 - 1)]
                       ) -> dict[str, Any]:
        """Withdraw one of your consents (recorded on the ledger); it ends at once."""
        writing(who)
        return await people.withdraw(who, index)
