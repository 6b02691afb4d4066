"""``POST /v1/query`` (one governed exchange, answered once its ledger entry is durable;
the exchange itself is ``protocol.exchange``, shared with the wire endpoint) and
``POST /v1/query/explain`` (what a query would read, and why it is allowed).

``POST /v1/query`` answers JSON or, with ``"format": "arrow"``, an Arrow IPC stream: two media
types of one operation. ``POST /v1/query/arrow`` is the same exchange always answered as
Arrow — one media type, so a client generated from the OpenAPI document reads its bytes
without guessing which of the two came back.

Queries run on the query service's own threads (``QueryService.pool``): tokenizing,
planning, running and encoding, so a slow query never delays another request, and the
catalog and ledger endpoints never wait behind queries for a thread. One kind is answered on
the event loop itself (``QueryService.quick``): a short query whose plan is cached and was
measured sub-millisecond on a SQLite file, bounded at 50 ms — a thread would cost more than
the lookup, and many threads convoy on the interpreter lock. Each
exchange's time limit starts when its request arrives; the loop answers ``504`` at the limit
(and one second of grace) even if the work has not given up yet.
"""

import json
import sys
import time
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Request, Response

from zhongshu.errors import ZhongshuError
from zhongshu.policy.identity import Caller
from zhongshu.protocol import encode, exchange
from zhongshu.protocol.contract import errors as answers
from zhongshu.protocol.models import ARROW_STREAM, QueryArrowIn, QueryIn, QueryOut
from zhongshu.protocol.routes import Parts

SWITCH_INTERVAL_S = 0.001


def add_routes(app: FastAPI, parts: Parts) -> None:
    """Mount the query and explain endpoints."""
    service, ledger, metrics, errors = parts.service, parts.ledger, parts.metrics, parts.errors
    # Planning is pure Python: a planning thread holds the interpreter lock for a whole
    # switch interval each time the loop asks for it. At CPython's default 5 ms, 20
    # concurrent catalog requests took 0.6 s while a large query planned; at 1 ms, 0.1 s.
    sys.setswitchinterval(SWITCH_INTERVAL_S)

    refusals = errors | answers(400, 404, 413, 429, 503, 504)
    arrow_answer = {"schema": {"type": "string", "format": "binary"}}
    arrow_headers = {
        "Zhongshu-Receipt": {"description": "the ledger receipt, JSON "
                                            '(`{"ledger", "index", "entry_hash"}`)',
                             "schema": {"type": "string"}},
        "Zhongshu-Row-Count": {"description": "rows in the stream",
                               "schema": {"type": "integer"}},
        "Zhongshu-Truncated": {"description": "whether rows were cut at the row cap or "
                                              "`limit`", "schema": {"type": "boolean"}}}

    @app.post("/v1/query", response_model=QueryOut, responses={
        **refusals, 200: {"content": {ARROW_STREAM: arrow_answer}, "headers": arrow_headers,
                          "description": "the JSON answer (`format` `json`), or an Arrow IPC "
                                         "stream (`format` `arrow`; the receipt then travels "
                                         "in the `Zhongshu-Receipt` header)"}},
              tags=["query"])
    async def query(request: Request, body: QueryIn,
                    who: Annotated[Caller, Depends(parts.caller)]) -> Response:
        """Answer one governed SELECT over datasets; the answer is sent once its ledger
        entry is durable, and carries the receipt."""
        return await answer(request, body, who)

    @app.post("/v1/query/arrow", response_class=Response, responses={
        **refusals, 200: {"content": {ARROW_STREAM: arrow_answer}, "headers": arrow_headers,
                          "description": "an Arrow IPC stream; the receipt in the "
                                         "`Zhongshu-Receipt` header"}},
              tags=["query"])
    async def query_arrow(request: Request, body: QueryArrowIn,
                          who: Annotated[Caller, Depends(parts.caller)]) -> Response:
        """The same exchange as ``POST /v1/query``, always answered as an Arrow IPC stream
        (the body has no ``format``)."""
        return await answer(request, QueryIn(**body.model_dump(), format="arrow"), who)

    async def answer(request: Request, body: QueryIn, who: Caller) -> Response:
        t0 = time.perf_counter()
        deadline = service.deadline()
        request.state.query = body

        try:
            done = await exchange.answer(service, ledger, who, body.sql, body.purpose,
                                         body.limit, body.format, deadline,
                                         allow_partial=body.allow_partial)
        except ZhongshuError as e:
            metrics.query(e.code, "-", time.perf_counter() - t0)
            raise
        result, payload, receipt, strings = done.result, done.payload, done.receipt, \
            done.strings
        metrics.query("ok", result.path, time.perf_counter() - t0)
        if body.format == "arrow":
            headers = {"Zhongshu-Truncated": "true" if result.truncated else "false",
                       "Zhongshu-Row-Count": str(result.num_rows)}
            if receipt is not None:
                headers["Zhongshu-Receipt"] = orjson.dumps(receipt).decode()
            if result.upstream:
                headers["Zhongshu-Upstream-Receipts"] = json.dumps(result.upstream)
            if result.partial:
                headers["Zhongshu-Partial"] = json.dumps(result.partial)  # ASCII
            return Response(payload, media_type=ARROW_STREAM, headers=headers)
        fed: dict[str, Any] = {}
        if result.upstream:
            fed["upstream_receipts"] = result.upstream
        if result.partial:
            fed["partial"] = result.partial
        head = orjson.dumps({"columns": encode.columns(result.schema, strings),
                             "row_count": result.num_rows, "truncated": result.truncated,
                             "row_scope": result.plan.row_scope, "receipt": receipt, **fed})
        return Response(head[:-1] + b',"rows":' + payload + b"}", media_type="application/json")

    @app.post("/v1/query/explain", responses=refusals, tags=["query"])
    async def explain(body: QueryIn,
                      who: Annotated[Caller, Depends(parts.caller)]) -> dict[str, Any]:
        """What a query would read and how it is governed — nothing is run.

        The answer shows the rewritten SQL (each dataset replaced by its governed view), the
        path (pushed down to one source, or DuckDB), and for each dataset the columns read
        with the grant that allows each, its mask, and the row scope.
        """
        deadline = service.deadline()
        return await exchange.off_loop(service, deadline, lambda: service.explain(
            who, body.sql, body.purpose, body.limit, deadline=deadline))
