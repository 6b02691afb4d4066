"""A NATS JetStream stream as a source: its health is the server's, its datasets the windows it
feeds; :class:`~zhongshu.sources.nats.subscriber.NatsSubscriber` does the consuming."""

from __future__ import annotations

import asyncio
import threading

import nats

from zhongshu.sources.base import Deliver, Streaming, Subscriber
from zhongshu.sources.errors import Failure
from zhongshu.sources.nats import errors
from zhongshu.sources.nats.subscriber import NatsSubscriber

PROBE_TIMEOUT_S = 3.0


class Source(Streaming):
    kind = "nats"
    default_port = 4222

    def subscriber(self, client_id: str, deliver: Deliver) -> Subscriber:
        return NatsSubscriber(self.stream, client_id, deliver)

    def probe(self) -> None:
        """Connect to the server and close (no consumer is created).

        Raises:
            nats.errors.NoServersError: the server cannot be reached.
            TimeoutError: it did not answer within ``PROBE_TIMEOUT_S``.
        """
        failure: list[BaseException] = []

        async def quiet(_e: Exception) -> None:
            return None  # the failure is raised to the caller, not logged by nats-py

        async def connect() -> None:
            nc = await nats.connect(f"nats://{self.stream.host}:{self.port}",
                                    connect_timeout=2, max_reconnect_attempts=1,
                                    reconnect_time_wait=0, error_cb=quiet)
            await nc.close()

        def run() -> None:
            try:
                asyncio.run(connect())
            except BaseException as e:  # handed to the probing thread
                failure.append(e)

        # a thread of its own: the caller may itself be running an event loop
        t = threading.Thread(target=run, name=f"nats-probe-{self.name}", daemon=True)
        t.start()
        t.join(PROBE_TIMEOUT_S + 2)
        if t.is_alive():
            raise TimeoutError(f"no answer from the NATS server within {PROBE_TIMEOUT_S:g} s")
        if failure:
            raise failure[0]

    def driver_failure(self, exc: BaseException) -> Failure | None:
        return errors.classify(exc)
