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

from zhongshu.config import StreamConfig

log = logging.getLogger("zhongshu.streams.nats")
Deliver = Callable[..., None]
FETCH = 1000


class NatsSubscriber:
    """One stream's durable consumer, fetched on an event loop of its own thread."""

    def __init__(self, cfg: StreamConfig, durable: str, deliver: Deliver) -> None:
        self.cfg = cfg
        self.durable = cfg.durable or durable
        self.deliver = deliver
        self.connected = False
        self._latest: Any = None  # newest committed message, to acknowledge
        self._acked: Any = None
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
                log.warning("stream %s: %s; retrying", self.cfg.name, e)
                await asyncio.sleep(1.0)

    async def _consume(self) -> None:
        url = f"nats://{self.cfg.host}:{self.cfg.port or 4222}"
        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=1)
        try:
            js = nc.jetstream()
            sub = await js.pull_subscribe(
                self.cfg.topic, durable=self.durable,
                config=ConsumerConfig(ack_policy=AckPolicy.ALL, ack_wait=10,
                                      deliver_policy=DeliverPolicy.ALL,
                                      max_ack_pending=100_000))
            self.connected = True
            while not self._stop.is_set():
                await self._ack_latest()
                try:
                    msgs = await sub.fetch(FETCH, timeout=0.2)
                except NatsTimeout:
                    continue
                for m in msgs:
                    self.deliver(self.cfg.name, m.data, self._acker(m),
                                 m.metadata.sequence.stream)
            await self._ack_latest()
        finally:
            self.connected = False
            await nc.close()

    def _acker(self, msg: Any) -> Callable[[], None]:
        def ack() -> None:
            self._latest = msg  # acknowledged on the subscriber's loop, newest first
        return ack

    async def _ack_latest(self) -> None:
        latest = self._latest
        if latest is not None and latest is not self._acked:
            await latest.ack()
            self._acked = latest

    def stop(self, timeout: float = 5.0) -> None:
        """Acknowledge what was committed, then disconnect."""
        self._stop.set()
        self._thread.join(timeout)
