"""One governed exchange, whichever face it comes through: ``POST /v1/query`` and the
PostgreSQL wire endpoint (``protocol.pgwire``) both call these, so the firewall, governed
views, limits, rate limits and the ledger entry are the same code, not copies.

:func:`answer` runs the query on the query service's threads (never on the event loop),
encodes the exact result bytes and records the exchange; :func:`record_refusal` records a
known caller's refusal. The answer is returned only once its entry is durable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from zhongshu.errors import LedgerUnavailable, ResultTooLarge
from zhongshu.ledger import Ledger, ReceiptJSON, entry
from zhongshu.policy.identity import Caller
from zhongshu.policy.subjects import PERSON, literal_identifiers
from zhongshu.protocol import encode
from zhongshu.protocol.people import index_keys, tagging
from zhongshu.query.service import Deadline, QueryService, Result

_T = TypeVar("_T")
GRACE_S = 1.0


async def off_loop(service: QueryService, deadline: Deadline, work: Callable[[], _T]) -> _T:
    """``work()`` on the query service's threads; ``QueryTimeout`` once ``deadline`` (and
    ``GRACE_S``) passed, whether or not the work has stopped (it stops itself: the deadline
    bounds planning and every engine)."""
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(service.pool, work)
    try:
        return await asyncio.wait_for(future, max(deadline.at - time.monotonic(), 0) + GRACE_S)
    except TimeoutError:
        raise deadline.timeout() from None


def answer_rows(result: Result) -> list[list[Any]]:
    """An answer's rows as JSON-ready values: the driver's (already plain) or the table's."""
    rows = result.native_rows
    return rows if rows is not None else encode.table_rows(result.table)


def too_large(service: QueryService, size: int) -> ResultTooLarge:
    return ResultTooLarge(f"the answer is {size:,} bytes, over the hub's limit of "
                          f"{service.settings.max_result_bytes:,}; select fewer columns, "
                          "aggregate, or pass a smaller `limit`")


def payload_of(service: QueryService, result: Result, fmt: str
               ) -> tuple[bytes, frozenset[int]]:
    """The exact result bytes — an Arrow IPC stream (``arrow``), or the canonical JSON rows
    (``json``, and the wire endpoint's ``pgwire``: its rows are these values) — and the
    columns whose integers the JSON sends as strings.

    Raises:
        ResultTooLarge: over the hub's byte limit.
    """
    limit = service.settings.max_result_bytes
    if result.native_rows is None and result.table.nbytes > limit:
        raise too_large(service, result.table.nbytes)  # refused before it is encoded
    strings: frozenset[int] = frozenset()
    if fmt == "arrow":
        payload = encode.arrow_ipc(result.table)
    else:
        payload, strings = encode.answer(answer_rows(result), result.schema)
    if len(payload) > limit:
        raise too_large(service, len(payload))
    return payload, strings


@dataclass(frozen=True)
class Answer:
    """A recorded answer: the result, its exact bytes, its receipt (None: no ledger), and
    the columns whose integers the JSON sends as strings."""

    result: Result
    payload: bytes
    receipt: ReceiptJSON | None
    strings: frozenset[int] = frozenset()


async def answer(service: QueryService, ledger: Ledger | None, who: Caller, sql: str,
                 purpose: str, limit: int | None, fmt: str, deadline: Deadline,
                 allow_partial: bool = False) -> Answer:
    """Run one governed query for ``who`` and record it; returns once the entry is durable.
    ``allow_partial``: over peer hubs' datasets, answer from those that answer (the result's
    ``partial`` names the others).

    A short query whose plan is cached and measured sub-millisecond is answered on the event
    loop itself (``QueryService.quick``); any other on the query service's threads.

    Raises:
        ZhongshuError: the refusal or failure (not recorded here: see
            :func:`record_refusal`).
    """
    quick = service.quick(who, sql, purpose, limit, deadline)
    if quick.result is not None:
        result = quick.result
        payload, strings = payload_of(service, result, fmt)
    else:
        def work() -> tuple[Result, tuple[bytes, frozenset[int]]]:
            charge, found = not quick.charged, quick.found
            result = (service.run_found(found, who, purpose, limit, deadline=deadline,
                                        charge=charge, allow_partial=allow_partial)
                      if found is not None else
                      service.run(who, sql, purpose, limit, deadline=deadline, charge=charge,
                                  allow_partial=allow_partial))
            return result, payload_of(service, result, fmt)

        result, (payload, strings) = await off_loop(service, deadline, work)
    receipt = None
    if ledger is not None:
        tags, excluded = tagging(service, who, result.identifiers, purpose)
        fields = entry.exchange(
            who.name, purpose, entry.query_sha256(sql, purpose, fmt, limit),
            result.plan.columns_read, [g.id for g in result.plan.grants],
            entry.result_sha256(payload), fmt, result.num_rows, result.truncated,
            signature=who.signature, key_id=who.key_id, on_behalf_of=who.on_behalf_of,
            subjects=tags, excluded=excluded, upstream=result.upstream,
            partial=[p["hub"] for p in result.partial])
        receipt = (await ledger.record_async(
            fields, index_keys(result.plan.columns_read, tags, excluded))).to_dict()
    return Answer(result, payload, receipt, strings)


@dataclass(frozen=True)
class Asked:
    """The query a refused request asked, when it got that far."""

    sql: str
    purpose: str
    fmt: str = "json"
    limit: int | None = None


async def record_refusal(service: QueryService, ledger: Ledger | None, who: Caller | None,
                         endpoint: str, code: str, asked: Asked | None = None,
                         datasets: Sequence[str] = (), subjects: Sequence[str] = (),
                         person: str | None = None, scenario: str | None = None
                         ) -> ReceiptJSON | None:
    """Record the refusal of a known caller (a member, or a person's tag in ``person``);
    anonymous refusals are never recorded. Returns the receipt (None: not recorded, or the
    ledger cannot record — the answer already says so)."""
    if ledger is None or (who is None and person is None):
        return None  # anonymous requests are counted, never recorded
    # a refused query is about whoever its literals name (its plan may not exist)
    tags, excluded = tagging(service, who, literal_identifiers(asked.sql) if asked else (),
                             asked.purpose if asked else None,
                             [*subjects, *([person] if person else [])])
    fields = entry.refusal(
        who.name if who is not None else PERSON, endpoint, code,
        purpose=asked.purpose if asked else None,
        query=entry.query_sha256(asked.sql, asked.purpose, asked.fmt, asked.limit)
        if asked else None,
        datasets=datasets, signature=who.signature if who else None,
        key_id=who.key_id if who else None, on_behalf_of=who.on_behalf_of if who else None,
        scenario=scenario, subjects=tags, excluded=excluded)
    try:  # indexed under its datasets too: an owner's usage shows the failed attempts
        return (await ledger.record_async(
            fields, index_keys(sorted(set(datasets)), tags, excluded))).to_dict()
    except LedgerUnavailable:
        return None
