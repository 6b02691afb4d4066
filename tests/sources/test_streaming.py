"""MQTT and NATS streams are sources of the same shape: health is their broker's, their
datasets are the window tables they feed, attached read-only from the owner's window store;
``zhongshu.streams`` subscribes through them (real Mosquitto and NATS on loopback)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.conftest import copy_demo_city, require_server
from tests.streams.test_mqtt import LIVE_FLOW, stream_block
from zhongshu.config import load_city
from zhongshu.errors import ConfigError
from zhongshu.sources import NativeSQL, Streaming, open_source, open_stream
from zhongshu.sources.base import scratch_engine
from zhongshu.sources.mqtt import MqttSubscriber
from zhongshu.sources.nats import NatsSubscriber
from zhongshu.streams.service import StreamService


@pytest.mark.parametrize(("kind", "port", "subscriber"), [
    ("mqtt", 1883, MqttSubscriber), ("nats", 4222, NatsSubscriber)])
def test_stream_source_shape(kind: str, port: int, subscriber: type, demo_dir: Path,
                             city_tmp: Path) -> None:
    require_server(kind.upper(), port)
    topic = f"zhongshu-test.{uuid.uuid4().hex[:8]}"
    root = copy_demo_city(demo_dir, city_tmp / "city",
                          {"traffic-police": stream_block(kind, topic) + LIVE_FLOW})
    city = load_city(root)
    member = city.members["traffic-police"]
    src = open_stream(member.streams[0], member, city.root)
    assert isinstance(src, Streaming) and not isinstance(src, NativeSQL)
    assert src.name == "passages-live" and src.owner == "traffic-police"
    assert src.health() == "ok"
    assert src.datasets() == ["traffic__live_flow", "rejected__passages_live"]
    assert src.schema("traffic__live_flow") == {
        "window_start": "TIMESTAMP", "window_end": "TIMESTAMP", "camera_id": "VARCHAR",
        "vehicles": "BIGINT", "avg_speed": "DOUBLE", "top_speed": "DOUBLE"}
    assert isinstance(src.subscriber("zhongshu-test", lambda *a: None), subscriber)
    streams = StreamService(city)  # creates the owner's window store
    try:
        con = scratch_engine()
        try:
            src.attach(con)
            # every table the stream feeds is in the store it attaches
            assert set(src.datasets()) <= set(super(Streaming, src).datasets())
            con.execute(f"SELECT * FROM {src.relation('traffic__live_flow').sql('duckdb')}")
        finally:
            con.close()
    finally:
        streams.stop()


def test_a_streaming_kind_is_not_declared_as_a_source(demo_dir: Path) -> None:
    city = load_city(demo_dir)
    owner, cfg = city.sources()["parks-db"]
    with pytest.raises(ConfigError, match="streaming kind"):
        open_source(cfg.model_copy(update={"kind": "mqtt"}), city.root, owner)
