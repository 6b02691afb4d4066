"""MQTT streams (paho-mqtt): the hub subscribes to a department's topic with QoS 1 and a
persistent session, and acknowledges each message only after its effect is committed, so a
message the broker considers delivered is never lost; while the hub is down the broker keeps
what arrives for it. Subscribing is reading: the hub publishes nothing on a department's
broker."""

from __future__ import annotations

import logging
from collections.abc import Callable

import paho.mqtt.client as mqtt

from zhongshu.config import StreamConfig

log = logging.getLogger("zhongshu.streams.mqtt")
Deliver = Callable[[str, bytes, Callable[[], None]], None]


class MqttSubscriber:
    """One stream's subscription; ``deliver(stream, payload, ack)`` gets every message."""

    def __init__(self, cfg: StreamConfig, client_id: str, deliver: Deliver) -> None:
        self.cfg = cfg
        self.deliver = deliver
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=False, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.connected = False

    def start(self) -> None:
        """Connect (and keep reconnecting) in paho's network thread."""
        self.client.connect_async(self.cfg.host, self.cfg.port or 1883, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, _userdata: object, _flags: object,
                    reason: mqtt.ReasonCode, _props: object = None) -> None:
        if reason.is_failure:
            log.warning("stream %s: MQTT connection refused: %s", self.cfg.name, reason)
            return
        self.connected = True
        client.subscribe(self.cfg.topic, qos=1)

    def _on_message(self, client: mqtt.Client, _userdata: object,
                    msg: mqtt.MQTTMessage) -> None:
        mid, qos = msg.mid, msg.qos
        self.deliver(self.cfg.name, msg.payload, lambda: client.ack(mid, qos))

    def stop(self) -> None:
        """Disconnect; unacknowledged messages stay with the broker for the next start."""
        self.client.disconnect()
        self.client.loop_stop()
