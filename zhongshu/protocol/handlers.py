"""Errors as the protocol sends them: ``{"error": {"code", "message"}, "receipt"?}``.

Every :class:`zhongshu.errors.ZhongshuError` carries its HTTP status and stable code; the
handlers here turn it (and FastAPI's own validation and routing errors) into that body, and
record each refusal of a known member on the ledger first, so the answer can carry its
receipt. Anonymous refusals are counted in metrics, never recorded (nobody can flood the
ledger). Unexpected errors answer ``internal`` without internals; the log has the details.

Unexpected errors are caught by a middleware (``Unexpected``), not by an exception handler:
Starlette answers a handler's 500 and then re-raises the error to the server, and uvicorn
closes a connection whose application raised — so the next request a client sent on that
keep-alive connection was reset. The middleware answers and the connection stays usable.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zhongshu.errors import BadRequest, NotFound, ZhongshuError
from zhongshu.ledger import Ledger, ReceiptJSON
from zhongshu.protocol import exchange
from zhongshu.protocol.models import QueryIn
from zhongshu.query.service import QueryService

log = logging.getLogger("zhongshu.protocol")
refusals = logging.getLogger("zhongshu.refusals")


def add_error_handlers(app: FastAPI, ledger: Ledger | None, service: QueryService) -> None:
    """Install the protocol's error handlers on ``app``, recording refusals on ``ledger``
    (tagged with the people they are about, ``protocol.people``)."""

    async def record_refusal(request: Request, code: str, datasets: Sequence[str] = (),
                             subjects: Sequence[str] = ()) -> ReceiptJSON | None:
        q: QueryIn | None = getattr(request.state, "query", None)
        return await exchange.record_refusal(
            service, ledger, getattr(request.state, "caller", None),
            f"{request.method} {request.url.path}", code,
            exchange.Asked(q.sql, q.purpose, q.format, q.limit) if q else None,
            datasets, subjects, person=getattr(request.state, "person", None),
            scenario=getattr(request.state, "scenario", None))

    @app.exception_handler(ZhongshuError)
    async def _zhongshu_error(request: Request, exc: ZhongshuError) -> Response:
        if exc.status >= 500 and exc.code == "internal":
            log.error("internal error on %s: %s", request.url.path, exc)
        elif exc.status == 401:  # anonymous: counted in metrics, not logged one by one
            log.debug("unauthenticated %s %s", request.method, request.url.path)
        elif exc.status in (403, 404, 429):
            # every refusal of a known member is logged (messages never hold data or secrets)
            refusals.warning("refused %s %s: %s: %s", request.method, request.url.path,
                             exc.code, exc.message)
        return error_response(exc, await record_refusal(
            request, exc.code, exc.datasets, getattr(exc, "subjects", ())))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        return error_response(BadRequest(f"{field or 'request'}: {err.get('msg')}"),
                              await record_refusal(request, BadRequest.code))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return error_response(NotFound(f"no such endpoint: {request.method} "
                                           f"{request.url.path}"))
        code = "method_not_allowed" if exc.status_code == 405 else "bad_request"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of every route on this path (RFC 9110)
            methods = sorted({m for r in app.routes if hasattr(r, "path_regex")
                              and r.path_regex.match(request.url.path)
                              for m in getattr(r, "methods", None) or ()})
            headers["Allow"] = ", ".join(methods)
        return JSONResponse({"error": {"code": code, "message": str(exc.detail)}},
                            status_code=exc.status_code, headers=headers)

    async def unexpected(request: Request) -> Response:
        try:
            receipt = await record_refusal(request, "internal")
        except Exception:
            receipt = None
        return error_response(ZhongshuError("internal error; the hub's log has the details"),
                              receipt)

    app.add_middleware(Unexpected, answer=unexpected)


class Unexpected:
    """ASGI middleware: an error no handler took becomes the protocol's ``internal`` answer
    (``answer(request)``), and is not raised further — the server keeps the connection. An
    error after the answer started (a stream) is raised: the body is cut, and closing the
    connection is the only way left to say so."""

    def __init__(self, app: ASGIApp, answer: Any) -> None:
        self.app = app
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            request = Request(scope, receive)
            log.exception("unexpected error on %s", request.url.path)
            if started:
                raise
            response: Response = await self.answer(request)
            await response(scope, receive, send)


def error_response(exc: ZhongshuError, receipt: ReceiptJSON | None = None) -> Response:
    """The protocol's JSON error for ``exc`` (with the refusal's receipt, when recorded)."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    body: dict[str, Any] = {"error": exc.to_dict()}
    if receipt is not None:
        body["receipt"] = receipt
    return Response(orjson.dumps(body), status_code=exc.status,
                    media_type="application/json", headers=headers)
