"""NATS errors (nats-py): no server reachable, a connection closed, reconnecting, stale or
timed out, or JetStream unavailable are transient; a refusal of the hub's credentials or
subject, and any other API error, are not."""

from __future__ import annotations

import nats.errors
import nats.js.errors

from zhongshu.sources.errors import Failure

_TRANSIENT: tuple[type[BaseException], ...] = (
    nats.errors.NoServersError, nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError, nats.errors.ConnectionDrainingError,
    nats.errors.StaleConnectionError, nats.errors.UnexpectedEOF, nats.errors.TimeoutError,
    nats.errors.OutboundBufferLimitError, nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError)


def classify(exc: BaseException) -> Failure | None:
    """What a nats-py error means; None when ``exc`` is not one."""
    if isinstance(exc, _TRANSIENT):
        return "transient"
    if isinstance(exc, (nats.errors.Error, nats.js.errors.Error)):
        return "terminal"
    return None
