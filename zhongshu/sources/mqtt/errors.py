"""MQTT errors (paho-mqtt): the socket's errors (refused, reset, unreachable: transient, as
for every kind) and a broker's refusal of the connection, by MQTT 5 reason code — "server
unavailable", "server busy", "server shutting down", "quota exceeded" are transient, a refusal
of the hub's credentials or client id is not."""

from __future__ import annotations

from paho.mqtt.reasoncodes import ReasonCode

from zhongshu.sources.errors import Failure

# 0x88 server unavailable, 0x89 server busy, 0x8B server shutting down, 0x97 quota exceeded,
# 0x9F connection rate exceeded
TRANSIENT_REASONS = frozenset({0x88, 0x89, 0x8B, 0x97, 0x9F})


class ConnectRefused(ConnectionError):
    """The broker answered the hub's CONNECT with a failure reason code."""

    def __init__(self, reason: ReasonCode) -> None:
        super().__init__(f"the MQTT broker refused the connection: {reason}")
        self.reason = reason


def classify(exc: BaseException) -> Failure | None:
    """What an MQTT error means; None when ``exc`` is not one."""
    if isinstance(exc, ConnectRefused):
        return "transient" if exc.reason.value in TRANSIENT_REASONS else "terminal"
    return None
