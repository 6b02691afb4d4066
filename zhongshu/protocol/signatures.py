"""Verifying signed requests: HTTP Message Signatures (RFC 9421) with Ed25519, and
Content-Digest (RFC 9530).

The hub verifies signatures on any request that carries ``Signature-Input`` and ``Signature``;
members of kind ``hub`` must sign. A valid signature covers at least ``@method``, ``@path``,
``@authority``, when there is a body ``content-digest``, and when there is a query string
``@query`` (or ``@target-uri``) — a signature binds the whole request; it carries
``created``, ``keyid`` and ``nonce``. Replays are refused: ``created`` must be within
``MAX_SKEW_S`` of the hub's clock and a nonce is accepted once.

Both headers are RFC 8941 structured fields, parsed by ``http-sfv`` (never by hand): one
signature, its components quoted strings without parameters (``"content-type";bs``,
``;sf``, ``;key``, ``;req``, ``;tr`` are refused by name — a parameter the hub ignored would
make it verify something else than the signer meant).

The signing half — the signature base, :class:`Message` and ``sign`` — lives in the client
(:mod:`zhongshu.client.signing`), so callers and the hub serialise a request the same way.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from http_sfv.dictionary import Dictionary
from http_sfv.item import InnerList
from http_sfv.types import Token

from zhongshu.client.signing import REQUIRED, Message, content_digest, signature_base
from zhongshu.errors import Unauthenticated
from zhongshu.stores import NonceStore

__all__ = ["MAX_SKEW_S", "REQUIRED", "Message", "Signed", "Verifier", "content_digest",
           "signature_base"]

MAX_SKEW_S = 300
PublicKeyOf = Callable[[str], tuple[str, bytes] | None]
"""Key id → (member, raw 32-byte Ed25519 public key), or None for an unknown or revoked key."""


@dataclass(frozen=True)
class Signed:
    """A verified signature: who signed, with which key, and the signature itself."""

    key_id: str
    label: str
    signature: str  # base64, as sent: kept in the exchange's ledger entry
    params: str


SUPPORTED_PARAMS = frozenset({"created", "expires", "keyid", "nonce", "alg", "tag"})
"""Signature parameters this hub reads; others are refused by name rather than ignored."""
_INTEGER = ("created", "expires")


def _parse_input(header: str) -> tuple[str, list[str], str, dict[str, str | int]]:
    """``(label, components, serialised params, params)`` of the one signature described.

    Raises:
        Unauthenticated: not one RFC 8941 dictionary member holding an inner list of
            strings; a component with parameters (``"content-type";bs``: this hub covers
            plain fields and derived components only); a component twice; an unknown or
            mistyped signature parameter.
    """
    example = 'e.g. sig1=("@method" "@path" ...);created=...;keyid="..."'
    try:
        parsed = Dictionary()
        parsed.parse(header.encode("latin-1"))
    except (ValueError, UnicodeEncodeError):
        raise Unauthenticated(f"malformed Signature-Input (RFC 8941 dictionary); {example}"
                              ) from None
    if len(parsed) != 1:
        raise Unauthenticated(f"send exactly one signature in Signature-Input; {example}")
    label, inner = next(iter(parsed.items()))
    if not isinstance(inner, InnerList):
        raise Unauthenticated(f"Signature-Input `{label}` is not a list of components; "
                              f"{example}")
    components: list[str] = []
    for item in inner:
        if not isinstance(item.value, str) or isinstance(item.value, Token):
            raise Unauthenticated("each covered component is a quoted string, e.g. "
                                  '"@method"')
        for name in item.params:
            raise Unauthenticated(f'the component "{item.value}";{name} has the parameter '
                                  f"`{name}`, which this hub does not support (no component "
                                  "parameters: sf, key, bs, req, tr, name…); cover the "
                                  "plain component")
        if item.value in components:
            raise Unauthenticated(f'the component "{item.value}" is covered twice')
        components.append(item.value)
    values: dict[str, str | int] = {}
    for name, value in inner.params.items():
        if name not in SUPPORTED_PARAMS:
            raise Unauthenticated(f"the signature parameter `{name}` is not supported "
                                  f"(only {', '.join(sorted(SUPPORTED_PARAMS))})")
        want = int if name in _INTEGER else str
        if isinstance(value, bool) or not isinstance(value, want) or \
                isinstance(value, Token):
            raise Unauthenticated(f"the signature parameter `{name}` must be "
                                  + ("an integer" if want is int else "a quoted string"))
        values[name] = value
    # the signature base carries the parameters as RFC 8941 serialises them
    return label, components, str(inner), values


def _parse_signature(header: str, label: str) -> bytes:
    try:
        parsed = Dictionary()
        parsed.parse(header.encode("latin-1"))
        value = parsed[label].value if label in parsed else None
    except (ValueError, UnicodeEncodeError):
        value = None
    if not isinstance(value, bytes) or not value:
        raise Unauthenticated(f"malformed Signature header for label `{label}` (expected "
                              f"{label}=:base64:)")
    return value


class Verifier:
    """Checks signatures against members' registered Ed25519 keys, refusing replays."""

    def __init__(self, public_key: PublicKeyOf, nonces: NonceStore) -> None:
        self._public_key = public_key
        self._nonces = nonces

    def verify(self, msg: Message, body: bytes, now: float | None = None
               ) -> tuple[str, Signed]:
        """The member that signed ``msg``.

        Raises:
            Unauthenticated: unknown key, bad signature, missing covered components or
                parameters, stale ``created``, replayed nonce, or a body that does not match
                its digest.
        """
        now = time.time() if now is None else now
        label, components, params, values = _parse_input(msg.headers["signature-input"])
        sig = _parse_signature(msg.headers.get("signature", ""), label)
        missing = [c for c in REQUIRED if c not in components]
        if body and "content-digest" not in components:
            missing.append("content-digest")
        if missing:
            raise Unauthenticated(f"the signature must cover {', '.join(missing)}")
        if msg.query and not {"@query", "@target-uri"} & set(components):
            raise Unauthenticated("the request has a query string: the signature must cover "
                                  "it (`@query` or `@target-uri`), or it would not bind what "
                                  "is asked")
        for p in ("created", "keyid", "nonce"):
            if p not in values:
                raise Unauthenticated(f"the signature must carry the `{p}` parameter")
        if values.get("alg", "ed25519") != "ed25519":
            raise Unauthenticated("only alg=\"ed25519\" is accepted")
        if abs(now - int(values["created"])) > MAX_SKEW_S:
            raise Unauthenticated(f"signature `created` is more than {MAX_SKEW_S} s from the "
                                  "hub's clock; check the caller's time")
        if "expires" in values and int(values["expires"]) < now:
            raise Unauthenticated("the signature has expired")
        key_id, nonce = str(values["keyid"]), str(values["nonce"])
        found = self._public_key(key_id)
        if found is None:
            raise Unauthenticated(f"unknown or revoked key `{key_id}`")
        member, raw = found
        if "content-digest" in components and msg.headers.get("content-digest") != \
                content_digest(body):
            raise Unauthenticated("Content-Digest does not match the body")
        base = signature_base(components, params, msg)
        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(sig, base.encode())
        except InvalidSignature:
            raise Unauthenticated("the request signature does not verify") from None
        self._spend_nonce(f"{key_id}|{nonce}", now)
        return member, Signed(key_id, label, base64.b64encode(sig).decode(), params)

    def _spend_nonce(self, nonce: str, now: float) -> None:
        # a nonce is remembered as long as its `created` could still be accepted
        if not self._nonces.spend(nonce, now, 2 * MAX_SKEW_S):
            raise Unauthenticated("replayed request: this signature nonce was already used")

