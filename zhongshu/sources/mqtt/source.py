"""An MQTT stream as a source: its health is the broker's, its datasets the windows it feeds;
:class:`~zhongshu.sources.mqtt.subscriber.MqttSubscriber` does the subscribing."""

from __future__ import annotations

import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from zhongshu.sources.base import Deliver, Streaming, Subscriber
from zhongshu.sources.errors import Failure
from zhongshu.sources.mqtt import errors
from zhongshu.sources.mqtt.subscriber import MqttSubscriber

PROBE_TIMEOUT_S = 3.0


class Source(Streaming):
    kind = "mqtt"
    default_port = 1883

    def subscriber(self, client_id: str, deliver: Deliver) -> Subscriber:
        return MqttSubscriber(self.stream, client_id, deliver)

    def probe(self) -> None:
        """Connect to the broker (a throwaway clean session: nothing is subscribed or
        published) and disconnect.

        Raises:
            OSError: the broker cannot be reached.
            errors.ConnectRefused: the broker refused the connection.
        """
        answer: list[ReasonCode] = []
        client = mqtt.Client(CallbackAPIVersion.VERSION2,
                             client_id=f"zhongshu-probe-{uuid.uuid4().hex[:12]}",
                             protocol=mqtt.MQTTv5)
        client.on_connect = lambda _c, _u, _f, reason, _p=None: answer.append(reason)
        client.connect(self.stream.host, self.port, keepalive=10)
        try:
            deadline = time.monotonic() + PROBE_TIMEOUT_S
            while not answer and time.monotonic() < deadline:
                client.loop(timeout=0.1)
            if not answer:
                raise TimeoutError(f"no answer from the MQTT broker within {PROBE_TIMEOUT_S:g} s")
            if answer[0].is_failure:
                raise errors.ConnectRefused(answer[0])
        finally:
            client.disconnect()

    def driver_failure(self, exc: BaseException) -> Failure | None:
        return errors.classify(exc)
