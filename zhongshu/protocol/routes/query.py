"""``POST /v1/query`` (one governed exchange, answered once its ledger entry is durable) and
``POST /v1/query/explain`` (what a query would read, and why it is allowed)."""

import time
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool

from zhongshu.errors import ResultTooLarge, SourceBusy, ZhongshuError
from zhongshu.ledger import entry
from zhongshu.policy.identity import Caller
from zhongshu.protocol import encode
from zhongshu.protocol.models import ARROW_STREAM, QueryIn, QueryOut
from zhongshu.protocol.routes import Parts
from zhongshu.query.service import Lookup, Result


def add_routes(app: FastAPI, parts: Parts) -> None:
    """Mount the query and explain endpoints."""
    service, ledger, metrics, errors = parts.service, parts.ledger, parts.metrics, parts.errors

    def inline(found: Lookup) -> Result | None:
        """Answer on the event loop a query whose cached plan was measured sub-millisecond on
        the source's own engine (handing a 50 µs SQLite lookup to a thread costs more than
        the lookup, and under load threads convoy on the GIL); None: run it on a thread."""
        if found.plan is None or not found.plan.is_quick():
            return None
        try:
            return service.execute(found.plan, found.template, wait=False)
        except SourceBusy:
            return None

    def payload_of(result: Result, body: QueryIn) -> bytes:
        """The exact result bytes: an Arrow IPC stream, or the canonical JSON rows."""
        if body.format == "arrow":
            payload = encode.arrow_ipc(result.table)
        else:
            payload = encode.rows_json(result.rows(), result.schema)
        limit = service.settings.max_result_bytes
        if len(payload) > limit:
            raise ResultTooLarge(f"the answer is {len(payload):,} bytes, over the hub's limit "
                                 f"of {limit:,}; select fewer columns, aggregate, or pass a "
                                 "smaller `limit`")
        return payload

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
        request.state.query = body
        try:
            found = service.lookup(who, body.sql, body.purpose, body.limit)
            result = inline(found)
            if result is None:
                result = await run_in_threadpool(service.run_found, found, who, body.purpose,
                                                  body.limit)
            payload = payload_of(result, body)
        except ZhongshuError as e:
            metrics.query(e.code, "-", time.perf_counter() - t0)
            raise
        receipt = None
        if ledger is not None:
            fields = entry.exchange(
                who.name, body.purpose, entry.query_sha256(body.sql, body.purpose, body.format,
                                                           body.limit),
                result.plan.columns_read, [g.id for g in result.plan.grants],
                entry.result_sha256(payload), body.format, result.num_rows, result.truncated,
                signature=who.signature, key_id=who.key_id, on_behalf_of=who.on_behalf_of)
            receipt = (await ledger.record_async(fields, list(result.plan.columns_read))
                       ).to_dict()
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
    def explain(body: QueryIn,
                who: Annotated[Caller, Depends(parts.caller)]) -> dict[str, Any]:
        """What a query would read and how it is governed — nothing is run.

        The answer shows the rewritten SQL (each dataset replaced by its governed view), the
        path (pushed down to one source, or DuckDB), and for each dataset the columns read
        with the grant that allows each, its mask, and the row scope.
        """
        return service.explain(who, body.sql, body.purpose, body.limit)
