"""``GET /v1/subscribe``: Server-Sent Events pushing the new rows of a governed query over
windowed datasets (stream aggregates) as the windows change.

A subscription must follow at least one windowed dataset and nothing else (``400
bad_request`` otherwise: a plain query is asked with ``POST /v1/query``). Every subscription
is rate-limited: a member opens at most ``[hub] subscribe_rate_limit`` per minute (the hub's
rate counters; ``429 rate_limited``), and each push spends the grants' own rate limits as a
query does.

Grants apply exactly as for ``/v1/query`` (the same plan, re-run); a subscription is a
ledger entry when it opens, one per hour of delivery and one when it closes, with the rows
pushed. Each ``rows`` event carries the rows that are new or changed since the previous
push (a window's row changes as its events arrive).

Planning, each run and its encoding happen on the query service's threads, within the
exchange's time limit (``protocol.exchange.off_loop``); a run that fails — a refusal, a timeout, a
value the encoder refuses — is an ``error`` event and the stream goes on."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import StreamingResponse

from zhongshu.config import is_window_dataset
from zhongshu.errors import BadRequest, RateLimited, ZhongshuError
from zhongshu.ledger import Ledger, ReceiptJSON, entry
from zhongshu.policy.identity import Caller
from zhongshu.protocol import encode
from zhongshu.protocol.exchange import answer_rows, off_loop
from zhongshu.query.service import Deadline, QueryService

log = logging.getLogger("zhongshu.protocol")
HOUR_S = 3600.0
KEEPALIVE_S = 15.0


def _event(kind: str, data: Any) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def add_subscribe_route(app: FastAPI, service: QueryService, ledger: Ledger | None,
                        caller: Any, errors: dict[int | str, dict[str, Any]]) -> None:
    """Mount ``GET /v1/subscribe``."""

    @app.get("/v1/subscribe", tags=["query"], responses={
        **errors, 200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                        "description": "events `open` (the ledger receipt), `rows` "
                        "({columns, rows}), `error` ({code, message}); comments as keep-alives"}})
    async def subscribe(request: Request, sql: str, purpose: str,
                        who: Annotated[Caller, Depends(caller)],
                        interval_s: Annotated[float, Query(ge=0.5, le=60)] = 1.0
                        ) -> StreamingResponse:
        """Follow a governed query over windowed datasets: its new rows, as they come."""
        first = service.deadline()
        plan, _ = await off_loop(service, first,
                                 lambda: service.plan(who, sql, purpose, deadline=first))
        plain = [d for d in plan.datasets.values()
                 if not is_window_dataset(d.config, d.owner)]
        if plain:
            raise BadRequest(f"subscriptions follow windowed datasets (stream aggregates); "
                             f"`{plain[0].name}` is not one — ask it with POST /v1/query")
        if not plan.datasets:
            raise BadRequest("subscriptions follow windowed datasets (stream aggregates); "
                             "this query reads none — ask it with POST /v1/query")
        limit = service.city.hub.subscribe_rate_limit
        retry = service.grants.rates.hit(f"subscribe:{who.name}", limit, 60.0, time.time())
        if retry is not None:
            raise RateLimited(f"a member may open {limit} subscriptions per minute; retry in "
                              f"{max(retry, 1):.0f} s")
        for grant in plan.grants:
            service.grants.spend(grant)  # opening counts as one use of each grant
        qhash = entry.query_sha256(sql, purpose, "sse", None)
        grants = [g.id for g in plan.grants]

        async def record(phase: str, rows: int, pushes: int) -> ReceiptJSON | None:
            if ledger is None:
                return None
            fields = entry.subscription(who.name, phase, purpose, qhash, plan.columns_read,
                                        grants, rows, pushes, who.signature, who.key_id,
                                        on_behalf_of=who.on_behalf_of)
            return (await ledger.record_async(fields, list(plan.columns_read))).to_dict()

        opened = await record("open", 0, 0)

        def push(deadline: Deadline) -> tuple[list[dict[str, str]], list[Any]]:
            """One run: the columns and the rows as JSON values (canonical bytes, parsed)."""
            result = service.run(who, sql, purpose, deadline=deadline)
            payload, strings = encode.answer(answer_rows(result), result.schema)
            return encode.columns(result.schema, strings), orjson.loads(payload)

        async def events() -> AsyncIterator[bytes]:
            seen: set[bytes] = set()
            rows_sent = pushes = 0
            hour = last = time.monotonic()
            try:
                yield _event("open", {"receipt": opened})
                while not await request.is_disconnected():
                    deadline = service.deadline()
                    try:
                        columns, rows = await off_loop(service, deadline,
                                                       partial(push, deadline))
                    except ZhongshuError as e:
                        yield _event("error", e.to_dict())
                        await asyncio.sleep(interval_s)
                        continue
                    except Exception:
                        log.exception("subscription run failed")
                        yield _event("error", ZhongshuError(
                            "internal error; the hub's log has the details").to_dict())
                        await asyncio.sleep(interval_s)
                        continue
                    keys = [orjson.dumps(r) for r in rows]
                    fresh = [r for r, k in zip(rows, keys, strict=True) if k not in seen]
                    seen = set(keys)
                    if fresh:
                        rows_sent += len(fresh)
                        pushes += 1
                        last = time.monotonic()
                        yield _event("rows", {"columns": columns, "rows": fresh})
                    elif time.monotonic() - last > KEEPALIVE_S:
                        last = time.monotonic()
                        yield b": keep-alive\n\n"
                    if time.monotonic() - hour >= HOUR_S:
                        hour = time.monotonic()
                        await record("hour", rows_sent, pushes)
                    await asyncio.sleep(interval_s)
            finally:
                await record("close", rows_sent, pushes)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})
