"""The hub's subscription to one NATS stream (see :mod:`zhongshu.sources.nats`)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import nats
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from zhongshu.config import StreamConfig

log = logging.getLogger("zhongshu.streams.nats")
Deliver = Callable[..., None]
FETCH = 1000
ACK_WAIT_S = 10  # a message not acknowledged within this is delivered again
FLOOR_EVERY_S = 2.0


class NatsSubscriber:
    """One stream's durable consumer, fetched on an event loop of its own thread. Each
    message is acknowledged by itself once committed (ack policy *explicit*: acknowledging
    one never acknowledges another, still uncommitted); :attr:`floor` is the consumer's
    acknowledgement floor (every message up to it is acknowledged), read every few
    seconds."""

    def __init__(self, cfg: StreamConfig, durable: str, deliver: Deliver) -> None:
        self.cfg = cfg
        self.durable = cfg.durable or durable
        self.deliver = deliver
        self.connected = False
        #: the stream sequence number up to which every message is acknowledged
        self.floor = 0
        self._committed: list[Any] = []  # committed messages, to acknowledge
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"nats-{cfg.name}",
                                        daemon=True)

    def start(self) -> None:
        """Connect and fetch in a background thread (reconnecting while the hub runs)."""
        self._thread.start()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        while not self._stop.is_set():
            try:
                await self._consume()
            except Exception as e:  # broker down, stream missing: say so, try again
                self.connected = False
                log.warning("stream %s: %s %s; retrying", self.cfg.name, type(e).__name__, e)
                await asyncio.sleep(1.0)

    async def _consume(self) -> None:
        url = f"nats://{self.cfg.host}:{self.cfg.port or 4222}"
        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=1)
        try:
            js = nc.jetstream()
            start = await self._migrate(js)
            sub = await js.pull_subscribe(
                self.cfg.topic, durable=self.durable,
                config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT_S,
                                      deliver_policy=DeliverPolicy.BY_START_SEQUENCE
                                      if start else DeliverPolicy.ALL, opt_start_seq=start,
                                      max_ack_pending=100_000))
            info = await sub.consumer_info()
            self.connected = True
            if info.num_ack_pending:
                # delivered to a process that died before acknowledging them: they come
                # again once their ack wait is over, and before any newer message — so the
                # stream is folded in its order (the windows' lateness counts on it)
                log.info("stream %s: %d messages were delivered to a hub that did not "
                         "acknowledge them; waiting %d s for them to come again first",
                         self.cfg.name, info.num_ack_pending, ACK_WAIT_S)
                await asyncio.sleep(ACK_WAIT_S)
            asked = 0.0
            loop = asyncio.get_running_loop()
            while not self._stop.is_set():
                await self._acknowledge()
                if loop.time() - asked > FLOOR_EVERY_S:
                    asked = loop.time()
                    info = await sub.consumer_info()
                    self.floor = _ack_floor(info)
                try:
                    msgs = await sub.fetch(FETCH, timeout=0.2)
                except (TimeoutError, NatsTimeout):  # nats-py raises either
                    continue
                for m in msgs:
                    self.deliver(self.cfg.name, m.data, self._acker(m),
                                 m.metadata.sequence.stream)
            await self._acknowledge()
        finally:
            self.connected = False
            await nc.close()

    async def _migrate(self, js: Any) -> int | None:
        """An older hub's durable consumer acknowledges with policy *all* (acknowledging one
        message acknowledged those before it, committed or not): replace it by one with
        explicit acknowledgements, starting right after what the old one had acknowledged;
        the sequence number it starts at (None: nothing to replace)."""
        try:
            stream = await js.find_stream_name_by_subject(self.cfg.topic)
            old = await js.consumer_info(stream, self.durable)
        except NotFoundError:
            return None
        if old.config.ack_policy == AckPolicy.EXPLICIT:
            return None
        floor = _ack_floor(old)
        log.warning("stream %s: durable consumer %s acknowledged with policy %s (an older "
                    "hub's); replacing it by one with explicit acknowledgements, from stream "
                    "sequence %d on", self.cfg.name, self.durable, old.config.ack_policy,
                    floor + 1)
        await js.delete_consumer(stream, self.durable)
        return floor + 1

    def _acker(self, msg: Any) -> Callable[[], None]:
        def ack() -> None:  # acknowledged on the subscriber's loop
            with self._lock:
                self._committed.append(msg)
        return ack

    async def _acknowledge(self) -> None:
        with self._lock:
            done, self._committed = self._committed, []
        if done:
            await asyncio.gather(*(m.ack() for m in done))

    def stop(self, timeout: float = 5.0) -> None:
        """Acknowledge what was committed, then disconnect."""
        self._stop.set()
        self._thread.join(timeout)


def _ack_floor(info: Any) -> int:
    """The stream sequence number up to which a consumer's messages are all acknowledged."""
    return (info.ack_floor.stream_seq or 0) if info.ack_floor else 0
