"""One peer hub, reached through the protocol's client as this hub's member there.

Every request is signed (RFC 9421) with this hub's federation key; a query names the caller
it is made for in ``Zhongshu-On-Behalf-Of``, covered by the signature. Each peer has a time
limit to connect (``timeout_s``) and to answer (``answer_timeout_s``, within the exchange's
own deadline) and a circuit breaker, so a dead or hanging peer costs at most ``timeout_s``,
and nothing once its breaker is open.

What comes back is data: a refusal (4xx) is re-raised as the protocol's error of the same
code, its message prefixed with the peer's name; anything else that goes wrong (unreachable,
slow, 5xx, an answer that is not an Arrow stream of the columns asked, no receipt) is
``PeerUnavailable`` naming the peer.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pyarrow as pa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from zhongshu import errors
from zhongshu.client import Hub
from zhongshu.client.hub import HubError
from zhongshu.config import FederationSettings, PeerConfig
from zhongshu.errors import PeerUnavailable, ZhongshuError
from zhongshu.federation.breaker import Breaker
from zhongshu.federation.catalogs import CATALOG_PATH
from zhongshu.federation.keys import key_id, public_raw

_HASH = re.compile(r"^[0-9a-f]{64}$")

Transport = Callable[[PeerConfig], httpx.BaseTransport | None]


@dataclass(frozen=True)
class PeerAnswer:
    """A peer's answer: its table, whether it was cut at the peer's row cap, and its
    receipt with the peer's name and the SHA-256 of the exact bytes received."""

    table: pa.Table
    truncated: bool
    receipt: dict[str, Any]


def _receipt(raw: str | None, hub: str, payload: bytes) -> dict[str, Any]:
    """The peer's receipt, checked for shape, as the city keeps it.

    Raises:
        PeerUnavailable: missing or malformed (an answer without a receipt proves nothing).
    """
    try:
        r = json.loads(raw or "")
    except ValueError:
        r = None
    if not isinstance(r, dict) or not isinstance(r.get("ledger"), str) or \
            len(r["ledger"]) > 200 or not isinstance(r.get("index"), int) or \
            r["index"] < 0 or not isinstance(r.get("entry_hash"), str) or \
            not _HASH.fullmatch(r["entry_hash"]):
        raise PeerUnavailable(f"`{hub}` answered without a valid receipt", hub=hub)
    return {"hub": hub, "ledger": r["ledger"], "index": r["index"],
            "entry_hash": r["entry_hash"],
            "result_sha256": hashlib.sha256(payload).hexdigest()}


class Peer:
    """One peer hub (see the module docstring)."""

    def __init__(self, config: PeerConfig, settings: FederationSettings,
                 key: Ed25519PrivateKey, transport: httpx.BaseTransport | None = None
                 ) -> None:
        self.config = config
        self.name = config.name
        self.settings = settings
        self.breaker = Breaker(settings.breaker_failures, settings.breaker_open_s)
        self._behalf = threading.local()
        self.answer_timeout_s = settings.answer_timeout_s
        # catalogs are fetched in the background within the answer time limit; a query
        # sets its own limits (connect within timeout_s)
        self.hub = Hub(config.url, timeout=settings.answer_timeout_s, transport=transport,
                       key=(key_id(settings.member, public_raw(key)), key),
                       on_behalf=lambda: getattr(self._behalf, "who", None))

    def close(self) -> None:
        """Close its connections."""
        self.hub.close()

    def _unavailable(self, why: str) -> PeerUnavailable:
        return PeerUnavailable(f"peer hub `{self.name}` is unavailable: {why}", hub=self.name)

    def _call(self, send: Callable[[], httpx.Response], probe: bool = False
              ) -> httpx.Response:
        """``send()`` through the breaker, its failures translated (module docstring). A
        ``probe`` (the catalog refresh) goes out even when the breaker is open, and its
        success closes it: a peer that comes back is used again within one refresh."""
        if not probe and not self.breaker.allow():
            since = self.breaker.down_since
            at = time.strftime("%H:%M:%S", time.localtime(since)) if since else "now"
            raise self._unavailable(f"not answering since {at} (circuit open)")
        try:
            r = send()
        except httpx.TimeoutException:
            self.breaker.failed()
            raise self._unavailable("no answer in time") from None
        except httpx.TransportError:
            self.breaker.failed()
            raise self._unavailable("cannot be reached") from None
        except HubError as e:
            if e.status >= 500:
                self.breaker.failed()
                raise self._unavailable(f"it answered `{said(e.code)}`") from None
            self.breaker.succeeded()
            raise _forwarded(e, self.name) from None
        except ZhongshuError as e:
            if e.status >= 500:
                self.breaker.failed()
                raise self._unavailable(f"it answered `{e.code}`: {said(e.message)}") from None
            self.breaker.succeeded()
            raise _forwarded(e, self.name) from None
        self.breaker.succeeded()
        return r

    def catalog(self) -> Any:
        """The peer's published catalog document for this hub, unverified (JSON).

        Raises:
            PeerUnavailable: it could not be fetched, or is not JSON.
            ZhongshuError: the peer refused (forwarded, naming it).
        """
        r = self._call(lambda: self.hub.get(CATALOG_PATH), probe=True)
        try:
            return r.json()
        except ValueError:
            raise self._unavailable("its catalog is not JSON") from None

    def query(self, sql: str, purpose: str, on_behalf: str | None, columns: list[str],
              timeout_s: float) -> PeerAnswer:
        """Ask the peer ``sql`` (its answer must have exactly ``columns``), for ``purpose``,
        on behalf of ``on_behalf``, answered within ``timeout_s``.

        Raises:
            PeerUnavailable: unreachable, too slow, breaker open, or a malformed answer.
            ZhongshuError: the peer's refusal, forwarded (same code), naming it.
        """
        body = {"sql": sql, "purpose": purpose, "format": "arrow"}
        limit = min(timeout_s, self.answer_timeout_s)
        timeout = httpx.Timeout(limit, connect=min(self.settings.timeout_s, limit))
        self._behalf.who = on_behalf
        try:
            r = self._call(lambda: self.hub.post("/v1/query", body, timeout=timeout))
        finally:
            self._behalf.who = None
        payload = r.content
        try:
            table = pa.ipc.open_stream(payload).read_all()
        except (pa.ArrowInvalid, OSError):
            raise self._unavailable("its answer is not an Arrow stream") from None
        if table.column_names != columns:
            raise self._unavailable("its answer has other columns than asked")
        receipt = _receipt(r.headers.get("Zhongshu-Receipt"), self.name, payload)
        return PeerAnswer(table, r.headers.get("Zhongshu-Truncated") == "true", receipt)


MAX_MESSAGE = 300


def said(text: str) -> str:
    r"""A peer's message as this hub repeats it: printable, one line, at most
    ``MAX_MESSAGE`` characters (it is the peer's text, shown to callers and in logs).

    >>> said("no\nsuch\x1b[31m dataset" + "!" * 400)[:24], len(said("x" * 400))
    ('no such [31m dataset!!!!', 301)
    """
    clean = "".join(ch if ch.isprintable() else " " for ch in text)
    clean = " ".join(clean.split())
    return clean if len(clean) <= MAX_MESSAGE else clean[:MAX_MESSAGE] + "…"


def _forwarded(e: ZhongshuError, hub: str) -> ZhongshuError:
    """The peer's refusal as the same protocol error, naming the peer."""
    cls: type[ZhongshuError] = type(e) if not isinstance(e, HubError) else errors.BadRequest
    out = cls(f"peer hub `{hub}` refused: {said(e.message)}")
    if isinstance(e, HubError):
        out.code, out.status = e.code, e.status
    out.hub = hub
    return out


class Peers:
    """Every peer of this hub, by name."""

    def __init__(self, settings: FederationSettings, key: Ed25519PrivateKey,
                 transport: Transport | None = None) -> None:
        self.settings = settings
        self.key = key
        self.by_name = {p.name: Peer(p, settings, key, transport(p) if transport else None)
                        for p in settings.peers}

    def __getitem__(self, name: str) -> Peer:
        return self.by_name[name]

    def __iter__(self) -> Any:
        return iter(self.by_name.values())

    def close(self) -> None:
        """Close every peer's connections."""
        for p in self.by_name.values():
            p.close()
