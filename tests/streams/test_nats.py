"""A department's NATS JetStream stream → windows, through a durable consumer (real NATS on
loopback): a hub restart resumes where it left off, and nothing is counted twice."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from tests.conftest import copy_demo_city, require_server
from tests.streams.test_mqtt import (
    LIVE_FLOW,
    _events,
    _oracle,
    _rounded,
    _served,
    _wait,
    stream_block,
)
from zhongshu.config import load_city
from zhongshu.streams.service import StreamService


async def _department(name: str, subject: str, batches: list[list[dict[str, Any]]] | None,
                      delete: bool = False) -> None:
    """The department's side: its own stream, its own publishing."""
    nc = await nats.connect("nats://127.0.0.1:4222")
    js = nc.jetstream()
    if delete:
        await js.delete_stream(name)
    elif batches is None:
        await js.add_stream(name=name, subjects=[subject])
    else:
        for b in batches:
            await js.publish(subject, json.dumps(b).encode())
    await nc.close()


@pytest.fixture
def city(demo_dir: Path, city_tmp: Path) -> Iterator[tuple[Path, str, str]]:
    require_server("NATS", 4222)
    tag = uuid.uuid4().hex[:8]
    name, subject = f"ZSTEST_{tag}", f"zhongshu-test.{tag}.passages"
    asyncio.run(_department(name, subject, None))
    block = stream_block("nats", subject, f'durable = "hub-{tag}"\n')
    root = copy_demo_city(demo_dir, city_tmp / "city", {"traffic-police": block + LIVE_FLOW})
    yield root, name, subject
    asyncio.run(_department(name, subject, None, delete=True))


def test_a_restart_resumes_and_counts_once(city: tuple[Path, str, str]) -> None:
    root, name, subject = city
    events = _events(600, seed=5)
    chunks = [events[i:i + 50] for i in range(0, 600, 50)]
    asyncio.run(_department(name, subject, chunks[:4]))
    first = StreamService(load_city(root))
    first.start()
    _wait(first, 4)
    first.stop()  # acknowledges what it committed, then leaves
    asyncio.run(_department(name, subject, chunks[4:]))  # published while the hub is down
    again = StreamService(load_city(root))
    again.start()
    try:
        _wait(again, 8)
        time.sleep(0.5)  # anything redelivered would arrive now
        again.flush()
        assert sum(again.counters.messages.values()) == 8
    finally:
        again.stop()
    assert _served(root) == _rounded(_oracle(events))


def test_a_redelivered_message_is_counted_once(city: tuple[Path, str, str]) -> None:
    root, _, _ = city
    streams = StreamService(load_city(root))  # not subscribed: messages handed in directly
    streams.start(subscribe=False)
    events = _events(40, seed=9)
    try:
        streams.deliver("passages-live", json.dumps(events[:20]).encode(), None, seq=1)
        streams.deliver("passages-live", json.dumps(events[20:]).encode(), None, seq=2)
        streams.flush()
        # the hub crashed after committing, before acknowledging: the broker sends seq 2 again
        streams.deliver("passages-live", json.dumps(events[20:]).encode(), None, seq=2)
        streams.flush()
        assert streams.counters.duplicates == {"passages-live": 1}
    finally:
        streams.stop()
    again = StreamService(load_city(root))  # and after a restart, from the stored position
    again.start(subscribe=False)
    try:
        again.deliver("passages-live", json.dumps(events[20:]).encode(), None, seq=2)
        again.flush()
        assert again.counters.duplicates == {"passages-live": 1}
    finally:
        again.stop()
    assert _served(root) == _rounded(_oracle(events))


def test_an_older_hubs_ack_all_consumer_is_replaced_after_what_it_acknowledged(
        city: tuple[Path, str, str]) -> None:
    root, name, subject = city
    durable = next(st.durable for st in load_city(root).members["traffic-police"].streams)
    events = _events(80, seed=11)
    chunks = [events[i:i + 20] for i in range(0, 80, 20)]
    asyncio.run(_department(name, subject, chunks))

    async def older_hub() -> None:  # acknowledged (policy all) the first two, then stopped
        nc = await nats.connect("nats://127.0.0.1:4222")
        js = nc.jetstream()
        sub = await js.pull_subscribe(subject, durable=durable, config=ConsumerConfig(
            ack_policy=AckPolicy.ALL, deliver_policy=DeliverPolicy.ALL))
        msgs = await sub.fetch(3, timeout=5)
        await msgs[1].ack()  # the third was delivered, never acknowledged
        await nc.close()

    asyncio.run(older_hub())
    streams = StreamService(load_city(root))
    streams.start()
    try:
        _wait(streams, 2)
        time.sleep(0.5)  # the first two, had they come again, would arrive now
        streams.flush()
        assert sum(streams.counters.messages.values()) == 2
    finally:
        streams.stop()
    assert _served(root) == _rounded(_oracle(events[40:]))

    async def policy() -> Any:
        nc = await nats.connect("nats://127.0.0.1:4222")
        try:
            return (await nc.jetstream().consumer_info(name, durable)).config.ack_policy
        finally:
            await nc.close()

    assert asyncio.run(policy()) == AckPolicy.EXPLICIT
