"""Identities: members and their bearer tokens (stored as SHA-256 hashes, never in clear).

Tokens are 256-bit random strings, so a plain SHA-256 is a safe, fast at-rest form: the hub can
look a token up by its hash on every request without a slow password hash.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from zhongshu.catalog.catalog import Catalog, Member
from zhongshu.errors import NotFound, Unauthenticated
from zhongshu.policy.subjects import PersonScope

TOKEN_PREFIX = "zs_"
_CACHE_TTL_S = 5.0
CHANGES_CHECK_S = 0.25
"""How often the token cache asks the store whether anything changed (a token revoked
through the CLI or another replica empties it): a revocation holds within about this."""


@dataclass(frozen=True)
class Caller:
    """The authenticated member behind a request, and — for a scenario member acting for
    one of its declared callers — whom it acts for (``policy.behalf``).

    A Caller is always a member: a person is never one. A scenario acting for a person
    carries the person's scope in ``person`` (and ``on_behalf_of`` is ``"person"``); every
    query it makes then passes :func:`zhongshu.policy.subjects.check_person`, on top of the
    scenario member's own grants."""

    member: Member
    signature: str | None = None  # base64 RFC 9421 signature, when the request was signed
    key_id: str | None = None
    on_behalf_of: str | None = None  # the scenario's caller this request is made for
    person: PersonScope | None = None  # the person a scenario acts for

    @property
    def name(self) -> str:
        return self.member.name

    def has_role(self, role: str) -> bool:
        """Whether the member holds ``role`` (e.g. ``auditor``)."""
        return role in self.member.roles


def token_hash(token: str) -> str:
    """The at-rest form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(catalog: Catalog, member: str, label: str = "",
                expires_at: float | None = None, actor: str = "operator") -> str:
    """Create a new token for ``member``, store its hash and return the token (shown once).

    Raises:
        NotFound: the city has no such member.
    """
    if member not in catalog.members:
        raise NotFound(f"no member `{member}` in this city (members: "
                       f"{', '.join(sorted(catalog.members))})")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    h = token_hash(token)
    catalog.store.add_token(h, member, label, expires_at)
    catalog.store.record_change(actor, "token.issue", member, {"token_id": h[:12],
                                                               "label": label,
                                                               "expires_at": expires_at})
    return token


def revoke_tokens(catalog: Catalog, member: str, token_id: str | None = None,
                  actor: str = "operator") -> int:
    """Revoke ``member``'s tokens (all, or the one whose id — its hash's prefix — is
    ``token_id``) and record the change; return how many were revoked. Browser and wire
    sessions made from them end at their next request; every hub on this store (replicas, a
    serving hub beside the CLI) refuses them within ``CHANGES_CHECK_S`` of the change.
    """
    n = catalog.store.revoke_tokens(member, token_id)
    catalog.store.record_change(actor, "token.revoke", member, {"token_id": token_id or "*",
                                                               "count": n})
    return n


def register_key(catalog: Catalog, member: str, public_key: bytes | None = None,
                 actor: str = "operator") -> tuple[str, bytes | None]:
    """Register an Ed25519 key for ``member``: the given public key, or a new pair.

    Returns:
        the key id, and the new private key in PEM (None when a public key was given).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if member not in catalog.members:
        raise NotFound(f"no member `{member}` in this city")
    pem = None
    if public_key is None:
        private = Ed25519PrivateKey.generate()
        public_key = private.public_key().public_bytes(serialization.Encoding.Raw,
                                                       serialization.PublicFormat.Raw)
        pem = private.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    if len(public_key) != 32:
        raise NotFound("an Ed25519 public key is 32 bytes (base64: 44 characters)")
    key_id = f"{member}:{hashlib.sha256(public_key).hexdigest()[:16]}"
    catalog.store.add_key(key_id, member, public_key)
    catalog.store.record_change(actor, "key.register", member, {"key_id": key_id})
    return key_id, pem


def must_sign(member: Member) -> bool:
    """Whether ``member`` must sign every request (members of kind ``hub``: another hub's
    request is evidence in both ledgers, so it cannot rest on a bearer token)."""
    return member.kind == "hub"


class Authenticator:
    """Resolves bearer tokens to callers, with a short positive cache.

    A token issued by another process is found on first use (cache miss → store lookup). The
    cache is emptied whenever the store's change list moves (checked at most every
    ``CHANGES_CHECK_S``), so a token revoked through :func:`revoke_tokens` — by the CLI, or
    on another replica of the hub — is refused within that time; without a change it is
    refused within the cache's 5 s.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._cache: dict[str, tuple[float, Caller]] = {}
        self._lock = threading.Lock()
        self._version = catalog.store.version()
        self._checked = time.monotonic()
        #: the store's change number as last seen: a session that checked its token at an
        #: older one checks it again (the wire endpoint's sessions do) — the store's, so it
        #: holds across the Authenticators a reload makes
        self.generation = self._version

    def changed(self) -> int:
        """The current generation, after asking the store (at most every
        ``CHANGES_CHECK_S``) whether its change list moved; if it did, the cache is emptied
        and the generation moves."""
        now = time.monotonic()
        if now - self._checked >= CHANGES_CHECK_S:
            self._checked = now
            version = self.catalog.store.version()
            if version != self._version:
                with self._lock:
                    self._cache.clear()
                    self._version = self.generation = version
        return self.generation

    def member(self, name: str) -> Caller:
        """The caller for a member authenticated another way (a request signature)."""
        member = self.catalog.members.get(name)
        if member is None:
            raise Unauthenticated("the signing key belongs to no member of this city")
        return Caller(member)

    def token_live(self, member: str, token_hash_: str) -> Caller:
        """The caller of a session made from the token with ``token_hash_``, checked in the
        store on every call (no cache): revoking the token, or every token of its member,
        ends the session at once, and so does the token's expiry.

        Raises:
            Unauthenticated: the token is revoked or expired, names another member, or the
                member is gone or must sign.
        """
        name = self.catalog.store.token_member(token_hash_)
        member_ = self.catalog.members.get(name) if name == member else None
        if member_ is None or must_sign(member_):
            raise Unauthenticated("the session has ended: the token it was made from is "
                                  "revoked or expired; sign in again")
        return Caller(member_)

    def bearer(self, authorization: str | None) -> Caller:
        """The caller presenting a bearer token, if its kind may use one.

        Raises:
            Unauthenticated: as :meth:`authenticate`, or the member must sign its requests.
        """
        who = self.authenticate(authorization)
        if must_sign(who.member):
            raise Unauthenticated("members of kind `hub` must sign their requests "
                                  "(HTTP Message Signatures, RFC 9421, Ed25519); they have no "
                                  "bearer tokens or browser sessions")
        return who

    def authenticate(self, authorization: str | None) -> Caller:
        """The caller presenting ``Authorization: Bearer <token>``.

        Raises:
            Unauthenticated: header missing, malformed, or token unknown, revoked or expired.
        """
        if not authorization:
            raise Unauthenticated("no credentials: send `Authorization: Bearer <token>`")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("use `Authorization: Bearer <token>`")
        h = token_hash(token)
        generation = self.changed()
        now = time.monotonic()
        hit = self._cache.get(h)
        if hit and hit[0] > now:
            return hit[1]
        name = self.catalog.store.token_member(h)
        member = self.catalog.members.get(name) if name else None
        if member is None:
            raise Unauthenticated("the token is unknown, revoked or expired")
        caller = Caller(member)
        with self._lock:  # a revoked token stays usable for at most the cache's 5 s
            if len(self._cache) > 100_000:
                self._cache.clear()
            if generation == self.generation:  # not a lookup from before a change seen since
                self._cache[h] = (now + _CACHE_TTL_S, caller)
        return caller
