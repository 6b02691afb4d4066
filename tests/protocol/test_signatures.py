"""Signed requests: RFC 9421 test vector, hub members must sign, replays are refused."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from tests.conftest import RunningHub
from zhongshu import errors
from zhongshu.client import Hub
from zhongshu.client.signing import Message, sign, signature_base
from zhongshu.policy.identity import register_key
from zhongshu.protocol.signatures import Verifier
from zhongshu.stores.memory import MemoryNonceStore

# RFC 9421, Appendix B.1.4 (test-key-ed25519) and B.2.6
RFC_PRIVATE = (b"-----BEGIN PRIVATE KEY-----\n"
               b"MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n"
               b"-----END PRIVATE KEY-----\n")
RFC_PUBLIC = (b"-----BEGIN PUBLIC KEY-----\n"
              b"MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=\n"
              b"-----END PUBLIC KEY-----\n")
RFC_SIGNATURE = ("wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lI"
                 "p5WPpBKRCw==")


def test_rfc9421_b26_vector() -> None:
    msg = Message("POST", "/foo", "param=Value&Pet=dog", "example.com", {
        "date": "Tue, 20 Apr 2021 02:07:55 GMT", "content-type": "application/json",
        "content-length": "18"})
    params = ('("date" "@method" "@path" "@authority" "content-type" "content-length")'
              ';created=1618884473;keyid="test-key-ed25519"')
    base = signature_base(["date", "@method", "@path", "@authority", "content-type",
                           "content-length"], params, msg)
    assert base.splitlines()[0] == '"date": Tue, 20 Apr 2021 02:07:55 GMT'
    public = load_pem_public_key(RFC_PUBLIC)
    public.verify(base64.b64decode(RFC_SIGNATURE), base.encode())  # type: ignore[union-attr]
    private = load_pem_private_key(RFC_PRIVATE, None)
    assert base64.b64encode(private.sign(base.encode())).decode() == RFC_SIGNATURE  # type: ignore[union-attr, call-arg]


def test_verifier_refuses_replay_skew_and_tampering() -> None:
    private = load_pem_private_key(RFC_PRIVATE, None)
    raw = private.public_key().public_bytes_raw()  # type: ignore[union-attr]
    verifier = Verifier(lambda kid: ("hub-a", raw) if kid == "k1" else None, MemoryNonceStore())
    body = b'{"sql": "SELECT 1", "purpose": "x"}'
    msg = Message("POST", "/v1/query", "", "hub.example", {})
    headers = {k.lower(): v for k, v in sign(msg, body, private, "k1").items()}  # type: ignore[arg-type]
    signed = Message("POST", "/v1/query", "", "hub.example", headers)
    member, s = verifier.verify(signed, body)
    assert member == "hub-a" and s.key_id == "k1"
    with pytest.raises(errors.Unauthenticated, match="replayed"):
        verifier.verify(signed, body)
    fresh = {k.lower(): v for k, v in sign(msg, body, private, "k1").items()}  # type: ignore[arg-type]
    with pytest.raises(errors.Unauthenticated, match="Content-Digest"):
        verifier.verify(Message("POST", "/v1/query", "", "hub.example", fresh), body + b" ")
    with pytest.raises(errors.Unauthenticated, match="does not verify"):
        verifier.verify(Message("POST", "/v1/other", "", "hub.example", fresh), body)
    old = {k.lower(): v for k, v in sign(msg, body, private, "k1",  # type: ignore[arg-type]
                                         now=time.time() - 3600).items()}
    with pytest.raises(errors.Unauthenticated, match="clock"):
        verifier.verify(Message("POST", "/v1/query", "", "hub.example", old), body)
    other = {k.lower(): v for k, v in sign(msg, body, private, "k9").items()}  # type: ignore[arg-type]
    with pytest.raises(errors.Unauthenticated, match="unknown or revoked key"):
        verifier.verify(Message("POST", "/v1/query", "", "hub.example", other), body)


@pytest.fixture
def hub_city(own_hub_factory: Any) -> RunningHub:
    return own_hub_factory({"hub-xihu": '[member]\nname = "hub-xihu"\nkind = "hub"\n'
                                        'title = "Xihu district hub"\n'})


def test_hub_members_must_sign(hub_city: RunningHub) -> None:
    token = hub_city.token("hub-xihu")
    r = httpx.get(f"{hub_city.url}/v1/catalog", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "must sign" in r.json()["error"]["message"]
    key_id, pem = register_key(hub_city.service.catalog, "hub-xihu")
    assert pem is not None
    private = load_pem_private_key(pem, None)
    with Hub(hub_city.url, key=(key_id, private)) as client:  # type: ignore[arg-type]
        assert any(d["name"] == "traffic.segments" for d in client.catalog())
        with pytest.raises(errors.Forbidden):
            client.query("SELECT count(*) FROM traffic.segments", purpose="federation")
    # a captured signed request cannot be replayed
    req = httpx.Request("GET", f"{hub_city.url}/v1/catalog")
    msg = Message("GET", "/v1/catalog", "", req.url.netloc.decode(), {})
    req.headers.update(sign(msg, b"", private, key_id))  # type: ignore[arg-type]
    with httpx.Client() as raw_client:
        assert raw_client.send(req).status_code == 200
        again = raw_client.send(req)
    assert again.status_code == 401 and "replayed" in again.json()["error"]["message"]
