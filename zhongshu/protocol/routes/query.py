"""``POST /v1/query`` (one governed exchange, answered once its ledger entry is durable;
the exchange itself is ``protocol.exchange``, shared with the wire endpoint) and
``POST /v1/query/explain`` (what a query would read, and why it is allowed).

No query runs on the event loop: tokenizing, planning, running and encoding happen on the
query service's own threads (``QueryService.pool``), so a slow query never delays another
request, and the catalog and ledger endpoints never wait behind queries for a thread. Each
exchange's time limit starts when its request arrives; the loop answers ``504`` at the limit
(and one second of grace) even if the work has not given up yet.
"""

import sys
import time
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Request, Response

from zhongshu.errors import ZhongshuError
from zhongshu.policy.identity import Caller
from zhongshu.protocol import encode
from zhongshu.protocol.exchange import answer, off_loop
from zhongshu.protocol.models import ARROW_STREAM, QueryIn, QueryOut
from zhongshu.protocol.routes import Parts

SWITCH_INTERVAL_S = 0.001


def add_routes(app: FastAPI, parts: Parts) -> None:
    """Mount the query and explain endpoints."""
    service, ledger, metrics, errors = parts.service, parts.ledger, parts.metrics, parts.errors
    # Planning is pure Python: a planning thread holds the interpreter lock for a whole
    # switch interval each time the loop asks for it. At CPython's default 5 ms, 20
    # concurrent catalog requests took 0.6 s while a large query planned; at 1 ms, 0.1 s.
    sys.setswitchinterval(SWITCH_INTERVAL_S)

    @app.post("/v1/query", response_model=QueryOut, responses={
        **errors, 200: {"content": {ARROW_STREAM: {}}, "description":
                        "JSON answer, or an Arrow IPC stream when `format` is `arrow` (the "
                        "receipt then travels in the `Zhongshu-Receipt` header)"}},
              tags=["query"])
    async def query(request: Request, body: QueryIn,
                    who: Annotated[Caller, Depends(parts.caller)]) -> Response:
        """Answer one governed SELECT over datasets; the answer is sent once its ledger
        entry is durable, and carries the receipt."""
        t0 = time.perf_counter()
        deadline = service.deadline()
        request.state.query = body

        try:
            done = await answer(service, ledger, who, body.sql, body.purpose, body.limit,
                                body.format, deadline)
        except ZhongshuError as e:
            metrics.query(e.code, "-", time.perf_counter() - t0)
            raise
        result, payload, receipt = done.result, done.payload, done.receipt
        metrics.query("ok", result.path, time.perf_counter() - t0)
        if body.format == "arrow":
            headers = {"Zhongshu-Truncated": "true" if result.truncated else "false",
                       "Zhongshu-Row-Count": str(result.num_rows)}
            if receipt is not None:
                headers["Zhongshu-Receipt"] = orjson.dumps(receipt).decode()
            return Response(payload, media_type=ARROW_STREAM, headers=headers)
        head = orjson.dumps({"columns": encode.columns(result.schema),
                             "row_count": result.num_rows, "truncated": result.truncated,
                             "row_scope": result.plan.row_scope, "receipt": receipt})
        return Response(head[:-1] + b',"rows":' + payload + b"}", media_type="application/json")

    @app.post("/v1/query/explain", responses=errors, tags=["query"])
    async def explain(body: QueryIn,
                      who: Annotated[Caller, Depends(parts.caller)]) -> dict[str, Any]:
        """What a query would read and how it is governed — nothing is run.

        The answer shows the rewritten SQL (each dataset replaced by its governed view), the
        path (pushed down to one source, or DuckDB), and for each dataset the columns read
        with the grant that allows each, its mask, and the row scope.
        """
        deadline = service.deadline()
        return await off_loop(service, deadline, lambda: service.explain(
            who, body.sql, body.purpose, body.limit, deadline=deadline))
