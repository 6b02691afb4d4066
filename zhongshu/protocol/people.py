"""People as callers: OpenID Connect ID tokens, a person's identifiers, consents, exclusions.

A person is never a member and never a :class:`~zhongshu.policy.identity.Caller`: the
members' authentication (:mod:`zhongshu.protocol.auth`) knows only member tokens, so an ID
token sent to a member route is ``401``; people are admitted only where a route asks for a
:class:`Person` (``/v1/me/…``) or a scenario's ``[[callers]]`` table says ``people = true``.

* :class:`IdTokens` checks an ID token (a JWT) with ``joserfc``: signature by a key of the
  provider's JWKS (fetched over HTTP from ``[people] jwks_url`` and cached; fetched again,
  at most every ``_REFETCH_S``, when a token names an unknown key), algorithm from the
  configured list (never ``none`` or an HMAC), ``iss``, ``aud``, ``exp``/``nbf``/``iat`` with
  the configured leeway, a lifetime no longer than ``max_token_age_s``, and the id number in
  ``id_claim``. Every failure is ``401`` with a message that holds nothing of the token.
* :class:`People` finds a person's identifiers (their id number and the plates the registry
  says they own — a recorded exchange of the registry's owner), folds their consents from the
  ledger (the ledger is the record: given, withdrawn, until when), and records the city's
  declared exclusions when they change.
"""

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import httpx
import orjson

from zhongshu.config.people import PeopleSettings
from zhongshu.errors import BadRequest, LedgerUnavailable, Unauthenticated
from zhongshu.ledger import Ledger, entry
from zhongshu.policy.identity import TOKEN_PREFIX, Caller
from zhongshu.policy.subjects import INDEX, PERSON, PersonScope, SubjectKey, normalise
from zhongshu.protocol import encode
from zhongshu.query.service import QueryService

log = logging.getLogger("zhongshu.people")
CONSENTS = "consent:"  # index prefix of a person's consent entries (with their subject tag)
EXCLUSIONS = "people:exclusions"  # index key of the recorded declarations of exclusions
PURPOSE = "people-identifiers"  # the purpose of the registry lookups the hub makes
_REFETCH_S = 30.0
_MAX_JWKS_BYTES = 64 * 1024
_MAX_TOKEN_CHARS = 8192
_SCOPE_TTL_S = 60.0


def tagging(service: QueryService, who: Caller | None, identifiers: Any, purpose: str | None,
            extra: Any = ()) -> tuple[list[str], bool]:
    """The subject tags of an entry about ``identifiers`` (and the person a scenario acted
    for, and ``extra`` tags), and whether it falls under a declared exclusion of the city."""
    tags = set(service.subject_key.tags(identifiers)) | set(extra)
    if who is not None and who.person is not None:
        tags.add(who.person.tag)
    people = service.city.people
    excluded = who is not None and people is not None and any(
        e.member == who.name and e.purpose == purpose for e in people.exclusions)
    return sorted(tags), excluded


def index_keys(datasets: Any, tags: list[str], excluded: bool) -> list[str]:
    """What an entry is indexed under: its datasets (owners' usage) and, unless excluded,
    its subject tags (people's usage)."""
    return [*datasets, *([] if excluded else [INDEX + t for t in tags])]


@dataclass(frozen=True)
class Person:
    """A person signed in: their id number (normal form), the ID token they showed, and
    their subject tag. ``repr`` shows neither the number nor the token."""

    id_number: str
    token: str
    tag: str
    expires_at: float

    def __repr__(self) -> str:
        return f"Person(tag={self.tag[:12]}…)"


def looks_like_jwt(credential: str) -> bool:
    """Whether a bearer credential is shaped like a JWT (and is no member token).

    >>> looks_like_jwt("eyJh.eyJi.c2ln"), looks_like_jwt("zs_abc"), looks_like_jwt("a.b")
    (True, False, False)
    """
    return not credential.startswith(TOKEN_PREFIX) and credential.count(".") == 2


def bearer_of(authorization: str | None) -> str | None:
    """The credential of ``Authorization: Bearer …``, or None."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class IdTokens:
    """Checks ID tokens against the provider's JWKS, fetched over HTTP and cached.

    Args:
        settings: the ``[people]`` section.
        own_url: this hub's own base URL, against which a ``jwks_url`` that is a path is
            resolved (the demo serves its identity provider's keys itself). Never taken
            from a request: a ``Host`` header must not choose whose keys are trusted.
    """

    def __init__(self, settings: PeopleSettings, key: SubjectKey, own_url: str | None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.key = key
        url = settings.jwks_url
        if url.startswith("/"):
            url = urljoin(own_url, url) if own_url else ""
        self.url = url
        self._transport = transport
        self._keys: Any = None
        self._fetched = 0.0
        self._refreshed = float("-inf")  # the last fetch a token's unknown key asked for
        self._lock = asyncio.Lock()

    async def _fetch(self) -> Any:
        from joserfc.jwk import KeySet

        if not self.url:
            raise Unauthenticated("people cannot sign in here: the hub does not know where "
                                  "its identity provider's keys are")
        try:
            async with httpx.AsyncClient(timeout=5.0, follow_redirects=False,
                                         transport=self._transport) as http:
                r = await http.get(self.url)
            if r.status_code != 200 or len(r.content) > _MAX_JWKS_BYTES:
                raise ValueError(f"status {r.status_code}, {len(r.content)} bytes")
            doc = orjson.loads(r.content)
            keys = [k for k in doc.get("keys", []) if isinstance(k, dict)
                    and k.get("kty") in ("EC", "RSA", "OKP") and k.get("use", "sig") == "sig"
                    and "d" not in k]  # public signing keys only: never a shared secret
            return KeySet.import_key_set({"keys": keys})
        except Unauthenticated:
            raise
        except Exception as e:
            log.warning("identity provider keys not fetched from %s: %s", self.url,
                        type(e).__name__)
            raise Unauthenticated("the identity provider's keys cannot be fetched now; try "
                                  "again later") from None

    async def keys(self, refresh: bool = False) -> Any:
        """The provider's key set (cached ``jwks_cache_s``; ``refresh``: fetched again now,
        unless a refresh was already made in the last ``_REFETCH_S`` — tokens naming unknown
        keys cannot make the hub hammer the provider)."""
        async with self._lock:
            now = time.monotonic()
            again = refresh and now - self._refreshed > _REFETCH_S
            if self._keys is None or now - self._fetched > self.settings.jwks_cache_s or again:
                if again:
                    self._refreshed = now
                self._keys = await self._fetch()
                self._fetched = now
            return self._keys

    async def verify(self, token: str) -> Person:
        """The person an ID token names.

        Raises:
            Unauthenticated: the token is malformed, not signed by the provider's keys with an
                accepted algorithm, of another issuer or audience, expired or not yet valid,
                too long-lived, or without a valid id number in ``id_claim``.
        """
        from joserfc import jwt
        from joserfc.errors import JoseError

        if len(token) > _MAX_TOKEN_CHARS or not looks_like_jwt(token):
            raise Unauthenticated("not an ID token")
        s = self.settings
        try:
            keys = await self.keys()
            try:
                decoded = jwt.decode(token, keys, algorithms=s.algorithms)
            except JoseError as e:
                if type(e).__name__ not in ("InvalidKeyIdError", "MissingKeyError",
                                            "InvalidKeyLengthError"):
                    raise
                decoded = jwt.decode(token, await self.keys(refresh=True),
                                     algorithms=s.algorithms)
            claims = decoded.claims
            jwt.JWTClaimsRegistry(
                now=int(time.time()), leeway=s.leeway_s,
                iss={"essential": True, "value": s.issuer},
                aud={"essential": True, "value": s.audience},
                exp={"essential": True}, iat={"essential": True}).validate(claims)
        except Unauthenticated:
            raise
        except (JoseError, ValueError, TypeError, KeyError):
            raise Unauthenticated("the ID token is not valid here (signature, issuer, "
                                  "audience or time); sign in again") from None
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int) or not isinstance(iat, int) or \
                exp - iat > s.max_token_age_s:
            raise Unauthenticated(f"the ID token lives longer than the {s.max_token_age_s} s "
                                  "this hub accepts; sign in again")
        idn = normalise("id_number", claims.get(s.id_claim))
        if idn is None:
            raise Unauthenticated(f"the ID token carries no resident id number in "
                                  f"`{s.id_claim}`")
        return Person(idn, token, self.key.tag("id_number", idn), float(exp))


class People:
    """A city's people: who they are (:class:`IdTokens`), their identifiers, their consents
    and the declared exclusions, with the ledger as the record."""

    def __init__(self, settings: PeopleSettings, service: QueryService, ledger: Ledger | None,
                 tokens: IdTokens) -> None:
        self.settings = settings
        self.service = service
        self.ledger = ledger
        self.tokens = tokens
        self.key = service.subject_key
        self._scopes: dict[str, tuple[float, PersonScope]] = {}
        self._exclusions: int | None = None
        self._exclusions_checked = False
        self._exclusions_lock = asyncio.Lock()
        if ledger is not None:  # recorded when the hub starts (again later if it cannot now)
            try:
                self._exclusions = self._record_exclusions(ledger)
                self._exclusions_checked = True
            except LedgerUnavailable:
                log.warning("the declared exclusions are not recorded yet: the ledger cannot "
                            "record now; retried before the first answer to a person")

    # --- exclusions -----------------------------------------------------------------------

    def declared(self) -> list[dict[str, str]]:
        """The exclusions in force, as the person is shown them."""
        return [e.model_dump() for e in self.settings.exclusions]

    def excluded(self, member: str, purpose: str) -> bool:
        """Whether ``member``'s exchanges for ``purpose`` are a declared exclusion."""
        return any(e.member == member and e.purpose == purpose for e in self.settings.exclusions)

    @property
    def exclusions_index(self) -> int | None:
        """The index of the entry recording the exclusions in force (once checked)."""
        return self._exclusions

    def _record_exclusions(self, ledger: Ledger) -> int | None:
        """Record the declared exclusions if they differ from the last recorded ones; the
        index of the entry recording those in force (None: none declared, ever)."""
        found = ledger.reading(EXCLUSIONS)
        last = found[-1] if found else None
        body = ledger.entry(last) if last is not None else None
        if body is not None and orjson.loads(body).get("target", {}).get(
                "exclusions") == self.declared():
            return last
        if not self.declared() and last is None:
            return None
        fields = entry.change("city-configuration", "people.exclusions",
                              {"exclusions": self.declared()})
        return ledger.record(fields, [EXCLUSIONS]).index

    async def exclusions_recorded(self) -> int | None:
        """The index of the entry recording the exclusions in force (recorded when the hub
        started, or now if it could not then)."""
        async with self._exclusions_lock:
            if not self._exclusions_checked and self.ledger is not None:
                ledger = self.ledger
                self._exclusions = await asyncio.to_thread(self._record_exclusions, ledger)
                self._exclusions_checked = True
            return self._exclusions

    # --- identifiers ----------------------------------------------------------------------

    async def scope(self, person: Person) -> PersonScope:
        """The person's identifiers: their id number and the plates registered to them (the
        registry asked as its owner, the exchange recorded; cached a minute)."""
        hit = self._scopes.get(person.tag)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        ids: set[tuple[str, str]] = {("id_number", person.id_number)}
        ids |= {("plate", p) for p in await self._plates(person)}
        scope = PersonScope(person.tag, frozenset(ids))
        if len(self._scopes) > 100_000:
            self._scopes.clear()
        self._scopes[person.tag] = (time.monotonic() + _SCOPE_TTL_S, scope)
        return scope

    async def _plates(self, person: Person) -> list[str]:
        s = self.settings
        if s.registry is None:
            return []
        ds = self.service.catalog.dataset(s.registry)
        owner = self.service.catalog.members.get(ds.owner) if ds is not None else None
        if ds is None or owner is None:
            return []
        who = dataclasses.replace(Caller(owner), on_behalf_of=PERSON)
        # the id number has its normal form (digits and X): safe inside the literal
        sql = (f"SELECT {s.registry_plate} FROM {s.registry} WHERE {s.registry_owner} = "
               f"'{person.id_number}'")
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self.service.pool, lambda: self.service.run(
            who, sql, PURPOSE))
        rows = encode.table_rows(result.table) if result.native_rows is None \
            else result.native_rows
        plates = sorted({p for r in rows if (p := normalise("plate", r[0])) is not None})
        if self.ledger is not None:
            payload = encode.rows_json(rows, result.schema)
            tags = sorted({person.tag, *self.key.tags(("plate", p) for p in plates)})
            fields = entry.exchange(
                who.name, PURPOSE, entry.query_sha256(sql, PURPOSE),
                result.plan.columns_read, [g.id for g in result.plan.grants],
                entry.result_sha256(payload), "json", result.num_rows, result.truncated,
                on_behalf_of=PERSON, subjects=tags)
            await self.ledger.record_async(fields, [*result.plan.columns_read,
                                                    *(INDEX + t for t in tags)])
        return plates

    def tags(self, scope: PersonScope) -> list[str]:
        """The subject tags a person's entries are indexed under."""
        return self.key.tags(scope.identifiers)

    # --- consents -------------------------------------------------------------------------

    def consents(self, person: Person) -> list[dict[str, Any]]:
        """The person's consents in force now: ``{"consent", "scenario", "service",
        "until"}`` (``consent``: the index of the entry that gave it)."""
        if self.ledger is None:
            return []
        given: dict[int, dict[str, Any]] = {}
        for idx in self.ledger.reading(CONSENTS + person.tag):
            body = self.ledger.entry(idx)
            fields = orjson.loads(body) if body is not None else {}
            if not entry.about(fields, [person.tag]):
                continue
            target = fields.get("target", {})
            if fields.get("action") == "consent.give":
                given[idx] = {"consent": idx, **target}
            elif fields.get("action") == "consent.withdraw":
                given.pop(int(target.get("consent", -1)), None)
        now = entry.iso_ms(int(time.time() * 1000))
        return [c for c in given.values() if str(c.get("until", "")) > now]

    def consented(self, person: Person, scenario: str, service: str) -> bool:
        """Whether a consent of the person to ``service`` of scenario member ``scenario`` is
        in force."""
        return any(c.get("scenario") == scenario and c.get("service") == service
                   for c in self.consents(person))

    async def give(self, person: Person, scenario: str, service: str, days: int
                   ) -> dict[str, Any]:
        """Record the person's consent (who: their tag; what: the service of the scenario
        member; until when) and return it with its receipt.

        Raises:
            BadRequest: the scenario member asks no consent for that service.
        """
        mf = self.service.catalog.city.members.get(scenario)
        if mf is None or not any(r.consent and service in r.services for r in mf.callers):
            raise BadRequest(f"no scenario member `{scenario}` asks people's consent for a "
                             f"service `{service}`")
        until = entry.iso_ms(int((time.time() + days * 86400) * 1000))
        target = {"scenario": scenario, "service": service, "until": until}
        receipt = await self._record(person, "consent.give", target)
        return {"consent": receipt["index"], **target, "receipt": receipt}

    async def withdraw(self, person: Person, consent: int) -> dict[str, Any]:
        """Record the withdrawal of one of the person's consents in force.

        Raises:
            BadRequest: no consent of theirs in force has that index.
        """
        if not any(c["consent"] == consent for c in self.consents(person)):
            raise BadRequest(f"you have no consent {consent} in force")
        receipt = await self._record(person, "consent.withdraw", {"consent": consent})
        return {"withdrawn": consent, "receipt": receipt}

    async def _record(self, person: Person, action: str, target: dict[str, Any]
                      ) -> dict[str, Any]:
        if self.ledger is None:
            raise BadRequest("this hub keeps no ledger, so it cannot record consents")
        fields = entry.with_subjects(entry.change(PERSON, action, target), [person.tag])
        receipt = await self.ledger.record_async(
            fields, [INDEX + person.tag, CONSENTS + person.tag])
        return dict(receipt.to_dict())
