"""The connection to a hub: :class:`Hub`, what scenarios, cockpits, members' tools and peer
hubs use. Answers come back as Arrow tables or the protocol's JSON; an error answer is
raised as the protocol's error class for its code (:class:`HubError` for a code this
client does not know).

>>> def hub_answers(request: httpx.Request) -> httpx.Response:
...     if request.url.path == "/v1/health":
...         return httpx.Response(200, json={"status": "ok", "summary": {}})
...     return httpx.Response(403, json={"error": {"code": "forbidden", "message": "no"}})
>>> hub = Hub("http://hub.example", "zs_token", transport=httpx.MockTransport(hub_answers))
>>> hub.health()["status"]
'ok'
>>> hub.catalog()
Traceback (most recent call last):
zhongshu.errors.Forbidden: no
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pyarrow as pa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from zhongshu import errors
from zhongshu.client.signing import Message, sign

ARROW_STREAM = "application/vnd.apache.arrow.stream"
ON_BEHALF_OF = "Zhongshu-On-Behalf-Of"  # the caller a scenario member acts for
# the ID token of the person a scenario member acts for (checked by the hub itself)
ON_BEHALF_OF_PERSON = "Zhongshu-On-Behalf-Of-Person"
PERSON_PREFIX = "~person "  # an on_behalf value carrying a person's ID token (no member name)
_BY_CODE: dict[str, type[errors.ZhongshuError]] = {
    cls.code: cls for cls in (
        errors.Unauthenticated, errors.Forbidden, errors.ColumnNotGranted,
        errors.PurposeNotGranted, errors.CallerNotDeclared, errors.BehalfRefused,
        errors.NotYourData, errors.ConsentRequired,
        errors.DatasetNotFound, errors.NotFound, errors.SqlSyntax,
        errors.StatementNotAllowed, errors.FunctionNotAllowed, errors.ColumnNotFound,
        errors.QueryInvalid,
        errors.BadRequest, errors.RateLimited, errors.LookupBudgetExceeded,
        errors.ResultTooLarge, errors.QueryTimeout, errors.SourceUnavailable,
        errors.DatasetUnavailable, errors.PeerUnavailable)}


class HubError(errors.ZhongshuError):
    """An error answered by a hub whose code this client does not know; ``code`` and
    ``status`` are the hub's."""


class Hub:
    """A connection to one hub, as one member.

    Every method raises the protocol's error class for the code of an error answer
    (:class:`HubError` for an unknown code), and httpx's transport errors when the hub
    cannot be reached.

    Args:
        url: the hub's base URL, e.g. ``http://127.0.0.1:8400``.
        token: the member's bearer token (members of kind ``hub`` sign instead).
        timeout: seconds to wait for an answer.
        transport: an httpx transport to use instead of the network (e.g. an ASGI app).
        key: (key id, Ed25519 private key) to sign every request with (RFC 9421).
        on_behalf: for a scenario member: called before every request, it names the caller
            the scenario acts for (sent as ``Zhongshu-On-Behalf-Of``; the hub accepts it
            only from members of kind ``scenario``, for callers their file declares), or
            None when the scenario acts for itself — or, for a person, the person's OpenID
            Connect ID token, sent as ``Zhongshu-On-Behalf-Of-Person`` when the value starts
            with ``PERSON_PREFIX``: the hub verifies it and narrows every answer to them.
    """

    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None,
                 key: tuple[str, Ed25519PrivateKey] | None = None,
                 on_behalf: Callable[[], str | None] | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        hooks: dict[str, list[Callable[[httpx.Request], None]]] = {"request": []}
        if on_behalf is not None:
            hooks["request"].append(self._behalf)
        if key:
            hooks["request"].append(self._sign)
        self._on_behalf = on_behalf
        self._key = key
        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout, headers=headers,
                                  transport=transport, event_hooks=hooks)

    def _behalf(self, request: httpx.Request) -> None:
        """Name the caller this request is made for (or none: the member acts for itself)."""
        assert self._on_behalf is not None
        request.headers.pop(ON_BEHALF_OF, None)
        request.headers.pop(ON_BEHALF_OF_PERSON, None)
        who = self._on_behalf()
        if who is not None and who.startswith(PERSON_PREFIX):
            request.headers[ON_BEHALF_OF_PERSON] = who.removeprefix(PERSON_PREFIX)
        elif who is not None:
            request.headers[ON_BEHALF_OF] = who

    def _sign(self, request: httpx.Request) -> None:
        """Sign a request (RFC 9421, Ed25519) with this member's key."""
        assert self._key is not None
        key_id, private = self._key
        body = request.read()
        # the caller acted for is part of what is signed: nobody on the way can change it
        behalf = {h.lower(): request.headers[h] for h in (ON_BEHALF_OF,)
                  if h in request.headers}
        msg = Message(request.method, request.url.path, request.url.query.decode(),
                      request.url.netloc.decode(), behalf)
        request.headers.update(sign(msg, body, private, key_id, cover=tuple(behalf)))

    def close(self) -> None:
        """Close the underlying connections."""
        self._http.close()

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self, r: httpx.Response) -> httpx.Response:
        if r.status_code < 400:
            return r
        try:
            body = r.json()["error"]
            code, message = body["code"], body["message"]
        except Exception:
            code, message = "internal", f"HTTP {r.status_code} from the hub"
        cls = _BY_CODE.get(code)
        if cls is None:
            err = HubError(message)
            err.code, err.status = code, r.status_code
            raise err
        raise cls(message)

    def get(self, path: str, **params: Any) -> httpx.Response:
        """``GET path`` on the hub (e.g. the ledger's endpoints), its error raised as the
        protocol's error.

        Raises:
            ZhongshuError: the hub's answer was an error (its code's class when known).
        """
        return self._check(self._http.get(path, params=params))

    def post(self, path: str, body: dict[str, Any],
             timeout: httpx.Timeout | float | None = None) -> httpx.Response:
        """``POST path`` with a JSON body (within ``timeout``, default the connection's),
        its error raised as the protocol's error.

        Raises:
            ZhongshuError: the hub's answer was an error (its code's class when known).
        """
        if timeout is None:
            return self._check(self._http.post(path, json=body))
        return self._check(self._http.post(path, json=body, timeout=timeout))

    def health(self) -> dict[str, Any]:
        """``{"status", "summary"}`` of the hub; for a member with the ``operator`` or
        ``auditor`` role also ``"sources"`` and ``"ledger"`` (the detail)."""
        health: dict[str, Any] = self._check(self._http.get("/v1/health")).json()
        return health

    def catalog(self) -> list[dict[str, Any]]:
        """The datasets this member can see."""
        datasets: list[dict[str, Any]] = self._check(self._http.get("/v1/catalog")).json()
        return datasets

    def dataset(self, name: str) -> dict[str, Any]:
        """One dataset with this member's access to it."""
        dataset: dict[str, Any] = self._check(self._http.get(f"/v1/datasets/{name}")).json()
        return dataset

    def query(self, sql: str, purpose: str, limit: int | None = None) -> pa.Table:
        """Run a governed query; the answer travels as Arrow IPC.

        The table's schema metadata holds ``truncated`` (``b"true"`` when the answer was cut
        at the row cap) and, when the hub keeps a ledger, the exchange's ``receipt``.
        """
        body: dict[str, Any] = {"sql": sql, "purpose": purpose, "format": "arrow"}
        if limit is not None:
            body["limit"] = limit
        r = self._check(self._http.post("/v1/query", json=body))
        table = pa.ipc.open_stream(r.content).read_all()
        meta = {b"truncated": r.headers.get("Zhongshu-Truncated", "false").encode()}
        if "Zhongshu-Receipt" in r.headers:
            meta[b"receipt"] = r.headers["Zhongshu-Receipt"].encode()
        return table.replace_schema_metadata(meta)

    def query_json(self, sql: str, purpose: str, limit: int | None = None) -> dict[str, Any]:
        """Run a governed query and return the protocol's JSON answer."""
        body: dict[str, Any] = {"sql": sql, "purpose": purpose, "format": "json"}
        if limit is not None:
            body["limit"] = limit
        answer: dict[str, Any] = self._check(self._http.post("/v1/query", json=body)).json()
        return answer
