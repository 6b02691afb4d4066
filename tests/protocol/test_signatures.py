"""Signed requests: RFC 9421 test vector, hub members must sign, replays are refused."""

from __future__ import annotations

import base64
import time
from typing import Any

import http_sfv
import httpx
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from hypothesis import given, settings
from hypothesis import strategies as st

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


def _verifier() -> tuple[Any, Verifier]:
    private = load_pem_private_key(RFC_PRIVATE, None)
    raw = private.public_key().public_bytes_raw()  # type: ignore[union-attr]
    return private, Verifier(lambda kid: ("hub-a", raw) if kid == "k1" else None,
                             MemoryNonceStore())


def _hand_signed(private: Any, msg: Message, inner: str, created: int | None = None
                 ) -> Message:
    """``msg`` signed over exactly the components written in ``inner`` (RFC 8941 inner
    list text), bypassing the client's choice of components."""
    params = (f'({inner});created={created or int(time.time())};keyid="k1";'
              f'nonce="{time.time_ns()}"')
    names = [c.split('"')[1] for c in inner.split()]
    base = signature_base(names, params, msg)
    sig = base64.b64encode(private.sign(base.encode())).decode()
    return Message(msg.method, msg.path, msg.query, msg.authority,
                   {**msg.headers, "signature-input": f"sig1={params}",
                    "signature": f"sig1=:{sig}:"})


def test_a_signature_binds_the_query_string() -> None:
    private, verifier = _verifier()
    q = "sql=SELECT+count(*)+FROM+traffic.segment_flow&purpose=city-operations"
    msg = Message("GET", "/v1/subscribe", q, "hub.example", {})
    headers = {k.lower(): v for k, v in sign(msg, b"", private, "k1").items()}
    assert '"@query"' in headers["signature-input"]  # the client always covers it
    assert verifier.verify(Message("GET", "/v1/subscribe", q, "hub.example", headers), b"")
    for changed in (q.replace("count(*)", "plate"), q + "&interval_s=1", ""):
        fresh = {k.lower(): v for k, v in sign(msg, b"", private, "k1").items()}
        with pytest.raises(errors.Unauthenticated, match="does not verify"):
            verifier.verify(Message("GET", "/v1/subscribe", changed, "hub.example", fresh), b"")
    # a signature (by any signer) that leaves the query out is refused, even if it verifies
    loose = _hand_signed(private, msg, '"@method" "@path" "@authority"')
    with pytest.raises(errors.Unauthenticated, match="must cover it"):
        verifier.verify(loose, b"")
    for covers in ('"@method" "@path" "@authority" "@query"',
                   '"@method" "@path" "@authority" "@target-uri"'):
        assert verifier.verify(_hand_signed(private, msg, covers), b"")[0] == "hub-a"
    # without a query string, no need to cover one
    bare = Message("GET", "/v1/catalog", "", "hub.example", {})
    assert verifier.verify(_hand_signed(private, bare, '"@method" "@path" "@authority"'),
                           b"")[0] == "hub-a"


@pytest.mark.parametrize("param", ["bs", "sf", 'key="a"', "req", "tr", 'name="sql"',
                                   "x=1"])
@pytest.mark.parametrize("component", ["content-type", "@query", "@method"])
def test_component_parameters_are_refused_by_name(component: str, param: str) -> None:
    private, verifier = _verifier()
    msg = Message("GET", "/v1/catalog", "", "hub.example", {"content-type": "text/plain"})
    signed = _hand_signed(private, msg, f'"@method" "@path" "@authority" "{component}";{param}')
    name = param.split("=")[0]
    with pytest.raises(errors.Unauthenticated, match=f"parameter `{name}`") as e:
        verifier.verify(signed, b"")
    assert "does not verify" not in e.value.message


@pytest.mark.parametrize("header, says", [
    ('sig1=("@method" "@path"', "malformed Signature-Input"),
    ('sig1=("@method"), sig2=("@path")', "exactly one signature"),
    ('sig1="@method"', "not a list of components"),
    ('sig1=(method path authority);created=1;keyid="k1";nonce="n"', "quoted string"),
    ('sig1=("@method" "@method" "@path" "@authority");created=1;keyid="k1";nonce="n"',
     "covered twice"),
    ('sig1=("@method" "@path" "@authority");created="1";keyid="k1";nonce="n"', "integer"),
    ('sig1=("@method" "@path" "@authority");created=1;keyid=k1;nonce="n"', "quoted string"),
    ('sig1=("@method" "@path" "@authority");created=1;keyid="k1";nonce="n";foo=1',
     "`foo` is not supported"),
])
def test_malformed_signature_input_is_refused_clearly(header: str, says: str) -> None:
    _, verifier = _verifier()
    msg = Message("GET", "/v1/catalog", "", "hub.example",
                  {"signature-input": header, "signature": "sig1=:AAAA:"})
    with pytest.raises(errors.Unauthenticated, match=says):
        verifier.verify(msg, b"")


@settings(max_examples=60, deadline=None)
@given(key_id=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1,
                      max_size=40),
       query=st.text(st.sampled_from("abc=&%+*.()1"), max_size=30))
def test_client_serialisation_is_what_the_parser_reads(key_id: str, query: str) -> None:
    """The client writes RFC 8941 by hand; http-sfv (the hub's parser, an independent
    implementation) must read it back to the same text and the signature must verify."""
    private = load_pem_private_key(RFC_PRIVATE, None)
    raw = private.public_key().public_bytes_raw()  # type: ignore[union-attr]
    verifier = Verifier(lambda kid: ("m", raw) if kid == key_id else None, MemoryNonceStore())
    msg = Message("GET", "/v1/catalog", query, "hub.example", {})
    headers = {k.lower(): v for k, v in sign(msg, b"", private, key_id).items()}  # type: ignore[arg-type]
    parsed = http_sfv.Dictionary()
    parsed.parse(headers["signature-input"].encode())
    assert "sig1=" + str(parsed["sig1"]) == headers["signature-input"]
    assert parsed["sig1"].params["keyid"] == key_id
    signed = Message("GET", "/v1/catalog", query, "hub.example", headers)
    assert verifier.verify(signed, b"")[1].key_id == key_id


def test_signed_get_with_a_changed_query_string_is_401(hub_city: RunningHub) -> None:
    key_id, pem = register_key(hub_city.service.catalog, "hub-xihu")
    assert pem is not None
    private = load_pem_private_key(pem, None)
    url = f"{hub_city.url}/v1/catalog?namespace=traffic"
    req = httpx.Request("GET", url)
    msg = Message("GET", "/v1/catalog", "namespace=traffic", req.url.netloc.decode(), {})
    headers = sign(msg, b"", private, key_id)  # type: ignore[arg-type]
    with httpx.Client() as raw_client:
        moved = raw_client.get(url.replace("traffic", "health"), headers=headers)
        assert moved.status_code == 401, moved.text
        assert moved.json()["error"]["code"] == "unauthenticated"
        assert raw_client.get(url, headers=sign(msg, b"", private, key_id)  # type: ignore[arg-type]
                              ).status_code == 200
