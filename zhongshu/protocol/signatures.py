"""Verifying signed requests: HTTP Message Signatures (RFC 9421) with Ed25519, and
Content-Digest (RFC 9530).

The hub verifies signatures on any request that carries ``Signature-Input`` and ``Signature``;
members of kind ``hub`` must sign. A valid signature covers at least ``@method``, ``@path``,
``@authority`` and, when there is a body, ``content-digest``; it carries ``created``,
``keyid`` and ``nonce``. Replays are refused: ``created`` must be within ``MAX_SKEW_S`` of the
hub's clock and a nonce is accepted once.

The signing half — the signature base, :class:`Message` and ``sign`` — lives in the client
(:mod:`zhongshu.client.signing`), so callers and the hub serialise a request the same way.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

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


_INPUT = re.compile(r'^\s*([a-zA-Z0-9_*-]+)=(\(([^)]*)\)(.*))$')
_PARAM = re.compile(r';\s*([a-z0-9_*-]+)=("(?:[^"\\]|\\.)*"|-?\d+)')


def _parse_input(header: str) -> tuple[str, list[str], str, dict[str, str]]:
    m = _INPUT.match(header)
    if not m:
        raise Unauthenticated("malformed Signature-Input: send one signature, "
                              'e.g. sig1=("@method" "@path" ...);created=...;keyid="..."')
    label, params, inner, rest = m.group(1), m.group(2).strip(), m.group(3), m.group(4)
    components = re.findall(r'"([^"]+)"', inner)
    values = {k: v.strip('"') for k, v in _PARAM.findall(rest)}
    return label, components, params, values


def _parse_signature(header: str, label: str) -> bytes:
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == label and value.startswith(":") and value.endswith(":"):
            try:
                return base64.b64decode(value[1:-1], validate=True)
            except ValueError:
                break
    raise Unauthenticated(f"malformed Signature header for label `{label}`")


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
        found = self._public_key(values["keyid"])
        if found is None:
            raise Unauthenticated(f"unknown or revoked key `{values['keyid']}`")
        member, raw = found
        if "content-digest" in components and msg.headers.get("content-digest") != \
                content_digest(body):
            raise Unauthenticated("Content-Digest does not match the body")
        base = signature_base(components, params, msg)
        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(sig, base.encode())
        except InvalidSignature:
            raise Unauthenticated("the request signature does not verify") from None
        self._spend_nonce(f"{values['keyid']}|{values['nonce']}", now)
        return member, Signed(values["keyid"], label, base64.b64encode(sig).decode(), params)

    def _spend_nonce(self, nonce: str, now: float) -> None:
        # a nonce is remembered as long as its `created` could still be accepted
        if not self._nonces.spend(nonce, now, 2 * MAX_SKEW_S):
            raise Unauthenticated("replayed request: this signature nonce was already used")

