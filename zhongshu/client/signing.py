"""Signing requests: HTTP Message Signatures (RFC 9421) with Ed25519, and Content-Digest
(RFC 9530).

This is the half of the signature scheme a caller needs: the signature base (shared with the
hub's verifier, :mod:`zhongshu.protocol.signatures`, so both sides serialise a request the
same way) and :func:`sign`. A signature covers ``@method``, ``@path``, ``@query`` (always:
the hub refuses a signature that leaves a query string out), ``@authority`` and, when there
is a body, ``content-digest``; it carries ``created``, ``keyid``, ``alg`` and a fresh
``nonce``. The client only serialises (RFC 8941, by hand: the base install needs no parser);
the hub parses with ``http-sfv``, and a test checks both agree.

>>> base = signature_base(["@method", "@path"], '("@method" "@path");created=1',
...                       Message("GET", "/v1/catalog", "", "hub.example", {}))
>>> print(base)
"@method": GET
"@path": /v1/catalog
"@signature-params": ("@method" "@path");created=1
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from zhongshu.errors import Unauthenticated

REQUIRED = ("@method", "@path", "@authority")
"""The components every signature covers (and the hub requires)."""


@dataclass(frozen=True)
class Message:
    """The parts of an HTTP request a signature can cover."""

    method: str
    path: str
    query: str  # without the leading "?"
    authority: str
    headers: dict[str, str]  # lower-case names

    def component(self, name: str) -> str:
        """The value of component ``name`` as RFC 9421 §2 serialises it.

        >>> Message("get", "/v1/query", "a=1", "Hub.Example", {}).component("@target-uri")
        'http://Hub.Example/v1/query?a=1'
        >>> Message("get", "/", "", "Hub.Example", {}).component("@authority")
        'hub.example'

        Raises:
            Unauthenticated: a derived component this scheme does not support, or a header
                the request lacks.
        """
        if name == "@method":
            return self.method.upper()
        if name == "@path":
            return self.path
        if name == "@query":
            return "?" + self.query
        if name == "@authority":
            return self.authority.lower()
        if name == "@target-uri":
            return f"http://{self.authority}{self.path}" + (f"?{self.query}" if self.query
                                                             else "")
        if name.startswith("@"):
            raise Unauthenticated(f"signature covers unsupported component `{name}`")
        if name not in self.headers:
            raise Unauthenticated(f"signature covers `{name}`, which the request lacks")
        return self.headers[name].strip()


def signature_base(components: list[str], params: str, msg: Message) -> str:
    """The RFC 9421 signature base for ``components`` and the serialized ``params``.

    Raises:
        Unauthenticated: a component ``msg`` cannot give (see :meth:`Message.component`).
    """
    lines = [f'"{c}": {msg.component(c)}' for c in components]
    lines.append(f'"@signature-params": {params}')
    return "\n".join(lines)


def _sf_string(value: str) -> str:
    r"""``value`` as an RFC 8941 string (§4.1.6).

    >>> print(_sf_string('a"b\\c'))
    "a\"b\\c"

    Raises:
        Unauthenticated: ``value`` has a character a structured-field string cannot hold.
    """
    if any(not 0x20 <= ord(ch) <= 0x7E for ch in value):
        raise Unauthenticated("a key id is printable ASCII")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def content_digest(body: bytes) -> str:
    """RFC 9530 ``Content-Digest`` value (sha-256) of ``body``.

    >>> content_digest(b"")
    'sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:'
    """
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


def sign(msg: Message, body: bytes, key: Ed25519PrivateKey, key_id: str,
         now: float | None = None, label: str = "sig1",
         cover: tuple[str, ...] = ()) -> dict[str, str]:
    """Headers that sign ``msg`` (Signature-Input, Signature and, with a body,
    Content-Digest): each call carries a new nonce, so no two signatures are alike.
    ``cover`` names headers of ``msg.headers`` (lower case) the signature covers too (a peer
    hub's ``zhongshu-on-behalf-of``).

    >>> key = Ed25519PrivateKey.generate()
    >>> headers = sign(Message("POST", "/v1/query", "", "hub.example", {}), b"{}", key,
    ...                "city-hub-1", now=1_700_000_000)
    >>> sorted(headers)
    ['Signature', 'Signature-Input', 'content-digest']
    >>> headers["Signature-Input"].split(";")[0]
    'sig1=("@method" "@path" "@query" "@authority" "content-digest")'
    >>> headers["Signature-Input"].split(";")[1:3]
    ['created=1700000000', 'keyid="city-hub-1"']
    """
    headers = dict(msg.headers)
    components = [*REQUIRED[:2], "@query", *REQUIRED[2:]]
    extra: dict[str, str] = {}
    if body:
        extra["content-digest"] = content_digest(body)
        headers["content-digest"] = extra["content-digest"]
        components.append("content-digest")
    components += [h for h in cover if h in headers]
    created = int(time.time() if now is None else now)
    inner = " ".join(f'"{c}"' for c in components)
    params = (f'({inner});created={created};keyid={_sf_string(key_id)};alg="ed25519";'
              f'nonce="{secrets.token_urlsafe(12)}"')
    base = signature_base(components, params, Message(msg.method, msg.path, msg.query,
                                                      msg.authority, headers))
    sig = base64.b64encode(key.sign(base.encode())).decode()
    return {**extra, "Signature-Input": f"{label}={params}", "Signature": f"{label}=:{sig}:"}
