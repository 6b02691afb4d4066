"""NATS JetStream streams (nats-py): a durable pull consumer, so a restarted hub resumes
where it left off. The hub creates only its own consumer (reading); the department's stream
must exist. Messages are acknowledged (ack policy *all*: the newest acknowledges those
before it) once their effect is committed; each carries its stream sequence number, which
the window store keeps in the same transaction, so a message redelivered after a crash is
not counted twice."""

from zhongshu.sources.nats.source import Source
from zhongshu.sources.nats.subscriber import NatsSubscriber

__all__ = ["NatsSubscriber", "Source"]
