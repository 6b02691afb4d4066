"""ID tokens checked against a provider's JWKS fetched over HTTP (``protocol.people``),
with the provider played here by an httpx mock transport: the keys are fetched, cached,
fetched again when a token names a new key (rotation), and only public signing keys are
ever trusted — an ``oct`` (shared-secret) key in the document is ignored, so an HMAC token
signed with it is refused."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from zhongshu.config.people import PeopleSettings
from zhongshu.errors import Unauthenticated
from zhongshu.policy.subjects import SubjectKey
from zhongshu.protocol.people import IdTokens

IDN = "33010619800101123X"
SETTINGS = PeopleSettings(issuer="https://id.example", audience="hub", jwks_url="/jwks",
                          algorithms=["ES256", "RS256"], jwks_cache_s=3600)


class Provider:
    """A JWKS endpoint whose keys the test changes; counts its fetches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        self.status = 200

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert request.url == httpx.URL("http://hub.local/jwks")  # resolved on our own URL
        self.fetches += 1
        return httpx.Response(self.status, json={"keys": self.keys})


def _key(kid: str) -> ECKey:
    return ECKey.import_key(ECKey.generate_key("P-256").as_dict(private=True) | {"kid": kid})


def _token(key: Any, alg: str = "ES256", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": SETTINGS.issuer, "aud": SETTINGS.audience, "iat": now, "exp": now + 600,
            "resident_id": IDN.lower()} | claims
    return jwt.encode({"alg": alg, "kid": key.kid}, body, key)


def _tokens(provider: Provider, own_url: str | None = "http://hub.local") -> IdTokens:
    return IdTokens(SETTINGS, SubjectKey(b"s" * 32), own_url,
                    transport=httpx.MockTransport(provider.handler))


def test_keys_are_fetched_cached_and_refetched_for_a_new_key() -> None:
    provider = Provider()
    old, new = _key("k1"), _key("k2")
    provider.keys = [old.as_dict(private=False) | {"kid": "k1"}]
    tokens = _tokens(provider)

    async def run() -> None:
        person = await tokens.verify(_token(old))
        assert person.id_number == IDN  # normalised: upper-case X
        await tokens.verify(_token(old))
        assert provider.fetches == 1  # cached
        provider.keys.append(new.as_dict(private=False) | {"kid": "k2"})
        await tokens.verify(_token(new))  # unknown kid: fetched again
        assert provider.fetches == 2
        with pytest.raises(Unauthenticated):  # and again, too soon: not fetched
            await tokens.verify(_token(_key("k3")))
        assert provider.fetches == 2

    asyncio.run(run())


def test_only_public_signing_keys_are_trusted() -> None:
    provider = Provider()
    secret = OctKey.import_key(b"x" * 32, parameters={"kid": "oct"})
    signing = _key("k1")
    provider.keys = [secret.as_dict(private=True) | {"kid": "oct"},
                     signing.as_dict(private=True) | {"kid": "k1"}]  # a private part: skipped
    tokens = _tokens(provider)

    async def run() -> None:
        for token in (_token(secret, alg="HS256"), _token(signing)):
            with pytest.raises(Unauthenticated):
                await tokens.verify(token)

    asyncio.run(run())


def test_no_provider_reachable_is_401() -> None:
    provider = Provider()
    provider.status = 500
    key = _key("k1")

    async def run() -> None:
        with pytest.raises(Unauthenticated, match="cannot be fetched"):
            await _tokens(provider).verify(_token(key))
        with pytest.raises(Unauthenticated, match="does not know"):
            await _tokens(provider, own_url=None).verify(_token(key))

    asyncio.run(run())
