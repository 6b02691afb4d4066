"""The hub's subscription to one MQTT stream (see :mod:`zhongshu.sources.mqtt`)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from zhongshu.config import StreamConfig

log = logging.getLogger("zhongshu.streams.mqtt")
Deliver = Callable[..., None]
SESSION_EXPIRY_S = 7 * 24 * 3600
RECEIVE_MAXIMUM = 1000


class MqttSubscriber:
    """One stream's subscription; ``deliver(stream, payload, ack, redelivered=dup)`` gets
    every message, ``dup`` saying whether the broker delivers it again (it never saw its
    acknowledgement: the stream service looks it up among those committed)."""

    def __init__(self, cfg: StreamConfig, client_id: str, deliver: Deliver) -> None:
        self.cfg = cfg
        self.deliver = deliver
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.connected = False

    def start(self) -> None:
        """Connect (and keep reconnecting) in paho's network thread."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        # MQTT 5: the session (subscription and undelivered messages) outlives a restart;
        # up to RECEIVE_MAXIMUM messages may wait unacknowledged while their batch commits
        # (MQTT 3.1.1 leaves that to the broker: 20 by default on Mosquitto)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        self.client.connect_async(self.cfg.host, self.cfg.port or 1883, keepalive=30,
                                  clean_start=False, properties=props)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, _userdata: object, _flags: object,
                    reason: ReasonCode, _props: object = None) -> None:
        if reason.is_failure:
            log.warning("stream %s: MQTT connection refused: %s", self.cfg.name, reason)
            return
        client.subscribe(self.cfg.topic, qos=1)

    def _on_subscribe(self, _client: mqtt.Client, _userdata: object, _mid: int,
                      reasons: list[ReasonCode], _props: object = None) -> None:
        if any(r.is_failure for r in reasons):
            log.warning("stream %s: subscription to %s refused: %s", self.cfg.name,
                        self.cfg.topic, reasons)
            return
        self.connected = True  # subscribed: from now on nothing published is missed

    def _on_disconnect(self, *_args: object) -> None:
        self.connected = False  # paho reconnects; the session keeps what arrives meanwhile

    def _on_message(self, client: mqtt.Client, _userdata: object,
                    msg: mqtt.MQTTMessage) -> None:
        mid, qos = msg.mid, msg.qos

        def ack() -> None:
            client.ack(mid, qos)

        self.deliver(self.cfg.name, bytes(msg.payload), ack, redelivered=bool(msg.dup))

    def stop(self) -> None:
        """Disconnect; unacknowledged messages stay with the broker for the next start."""
        self.client.disconnect()
        self.client.loop_stop()
