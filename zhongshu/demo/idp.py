"""The demo city's own OpenID Connect identity provider: one signing key pair, its public
JWKS document, and ID tokens for demo residents.

It stands in for the city's real provider so that the hub takes the same path as with one:
the demo hub serves the public keys at ``GET /demo/idp/jwks.json`` (``[people] jwks_url`` of
the demo's ``city.toml``), the hub fetches them over HTTP and caches them, and a citizen
token (``zhongshu demo`` prints one) is checked like any provider's. The private key stays
in ``idp/signing.jwk`` (0600) of the city folder; the hub itself never signs a token.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from zhongshu.config.people import PeopleSettings

JWKS_PATH = "/demo/idp/jwks.json"
"""Where the demo hub serves the provider's public keys (public, like any provider's)."""


def key_path(city_root: Path) -> Path:
    """The demo provider's private signing key (a JWK) in a city folder (beside the hub's
    state, not in it: the provider is not part of the hub)."""
    return city_root / "idp" / "signing.jwk"


def signing_key(city_root: Path) -> Any:
    """The provider's EC P-256 signing key, created (0600) on first use."""
    from joserfc.jwk import ECKey

    path = key_path(city_root)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = ECKey.generate_key("P-256", parameters={"use": "sig", "alg": "ES256"})
        doc = key.as_dict(private=True)
        doc["kid"] = key.thumbprint()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(doc, f)
    return ECKey.import_key(json.loads(path.read_text(encoding="utf-8")))


def jwks(city_root: Path) -> dict[str, Any]:
    """The provider's JWKS document: its public key only."""
    key = signing_key(city_root)
    public = key.as_dict(private=False)
    public["kid"] = key.kid
    return {"keys": [public]}


def resident(city_root: Path) -> dict[str, Any]:
    """The demo resident ``zhongshu demo`` prints a token for: their id number and plates
    (from ``demo.json``, written when the city was built)."""
    found: dict[str, Any] = json.loads((city_root / "demo.json").read_text(
        encoding="utf-8")).get("resident", {})
    return found


def mint(city_root: Path, settings: PeopleSettings, id_number: str, ttl_s: int = 3600,
         key: Any = None, **claims: Any) -> str:
    """An ID token for the resident ``id_number``, signed by the demo provider (or ``key``),
    valid ``ttl_s`` from now; ``claims`` override the standard ones (``iss``, ``aud``,
    ``exp``…) — tests use this to make tokens the hub must refuse."""
    from joserfc import jwt

    key = key or signing_key(city_root)
    now = int(time.time())
    body: dict[str, Any] = {"iss": settings.issuer, "aud": settings.audience,
                            "sub": f"demo-{id_number[-6:]}", "iat": now, "nbf": now,
                            "exp": now + ttl_s, settings.id_claim: id_number}
    body.update(claims)
    return jwt.encode({"alg": "ES256", "kid": key.kid}, body, key)
