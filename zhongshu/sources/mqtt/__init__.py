"""MQTT streams (paho-mqtt): the hub subscribes to a department's topic with QoS 1 and a
persistent session, and acknowledges each message only after its effect is committed, so a
message the broker considers delivered is never lost; while the hub is down the broker keeps
what arrives for it. Subscribing is reading: the hub publishes nothing on a department's
broker."""

from zhongshu.sources.mqtt.source import Source
from zhongshu.sources.mqtt.subscriber import MqttSubscriber

__all__ = ["MqttSubscriber", "Source"]
