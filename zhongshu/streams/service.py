"""The stream service: subscribers hand messages to one committer, which parses them,
folds them into their windows and commits, then acknowledges them to the broker."""

from __future__ import annotations

import hashlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zhongshu.config import City, Lookup, stream_columns, stream_store
from zhongshu.sources import Subscriber, open_stream
from zhongshu.streams import columnar
from zhongshu.streams.pairs import Pairer
from zhongshu.streams.records import Lookups, Reader
from zhongshu.streams.windows import Aggregate, WindowStore

log = logging.getLogger("zhongshu.streams")
BATCH_MESSAGES = 10_000
BATCH_WAIT_S = 0.05
Message = tuple[str, bytes, Callable[[], None] | None, int | None]


@dataclass
class Counters:
    """What the service has seen, per stream (for metrics and tests)."""

    messages: dict[str, int] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    commits: int = 0


class StreamService:
    """Every declared stream of a city, ingested into its owner's window store."""

    def __init__(self, city: City) -> None:
        self.city = city
        self.stores: dict[str, WindowStore] = {}
        self.readers: dict[str, tuple[str, Reader]] = {}  # stream → (owner, reader)
        self.pairers: dict[str, list[Pairer]] = {}  # stream → its pairs stages
        # stream → the columns its aggregates read, for the columnar path
        self._fast: dict[str, dict[str, str]] = {}
        self._pair_types: dict[str, dict[str, str]] = {}  # pairs → the columns read of it
        for owner, mf in city.members.items():
            if not mf.streams:
                continue
            columns = stream_columns(mf)
            aggs = [Aggregate(a, columns[a.stream]) for a in mf.aggregates]
            reads: dict[str, set[str]] = {}  # stream or pairs → the columns aggregates read
            for a in aggs:
                reads.setdefault(a.cfg.stream, set()).update(a.needs())
            store = self.stores[owner] = WindowStore(city.root / stream_store(owner), aggs,
                                                     mf.streams)
            for st in mf.streams:
                self.readers[st.name] = (owner, Reader(st))
                wanted = set(reads.get(st.name, ()))
                for pc in st.pairs:
                    wanted |= {pc.key, pc.same, pc.differ, st.time_column,
                               *reads.get(pc.name, ()), *(lk.key for lk in pc.lookups)}
                    self._pair_types[pc.name] = {c.name: c.type for c in columns[pc.name]
                                                 if c.name in reads.get(pc.name, ())}
                if st.format == "json" and columnar.supported(c.type for c in columns[st.name]):
                    self._fast[st.name] = {c.name: c.type for c in st.all_columns()
                                           if c.name in wanted}
                for pc in st.pairs:
                    pairer = Pairer(pc, st.time_column)
                    pending = store.take_pending(pc.name)
                    if pending:
                        pairer.load(pending)
                    self.pairers.setdefault(st.name, []).append(pairer)
        self.counters = Counters()
        self._queue: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._closing = False
        self._stop = threading.Event()
        self._subscribers: list[Subscriber] = []
        self._by_stream: dict[str, Subscriber] = {}
        self._last: dict[str, float] = {}  # stream → when its last message arrived (monotonic)
        self._committer = threading.Thread(target=self._run, name="stream-committer",
                                           daemon=True)

    def load_lookups(self, query: Callable[[str, str], list[dict[str, Any]]]) -> None:
        """Fill each stream's lookups with ``query(owner, sql)`` — the owner reading its own
        dataset through the hub (so the lookup sees exactly what the hub serves)."""
        def fill(owner: str, what: str, lookups: list[Lookup], into: Lookups) -> None:
            for lk in lookups:
                cols = [c.name for c in lk.columns]
                sql = (f"SELECT {lk.key}, " + ", ".join(
                    f"{c.expr} AS {c.name}" if c.expr else c.name for c in lk.columns) +
                       f" FROM {lk.dataset}")
                table = {r[lk.key]: r for r in query(owner, sql)}
                into.set(lk.key, table, cols)
                log.info("%s: %d rows looked up from %s", what, len(table), lk.dataset)

        for owner, mf in self.city.members.items():
            for st in mf.streams:
                fill(owner, f"stream {st.name}", st.lookups, self.readers[st.name][1].lookups)
                for pairer in self.pairers.get(st.name, []):
                    fill(owner, f"pairs {pairer.cfg.name}", pairer.cfg.lookups, pairer.lookups)

    def start(self, subscribe: bool = True) -> None:
        """Start committing and (unless ``subscribe`` is false: messages are then handed to
        :meth:`deliver` directly, e.g. by a benchmark) subscribe to every stream."""
        self._committer.start()
        if not subscribe:
            return
        for owner, mf in self.city.members.items():
            for st in mf.streams:
                # the broker keeps a persistent session (and its subscriptions) per client
                # id: a new topic gets a new session rather than the old topic's messages,
                # and two hubs of a city in different folders (a test, a staging copy) do
                # not take each other's session
                topic = hashlib.sha256(f"{st.topic}\0{self.city.root}".encode()
                                       ).hexdigest()[:8]
                client_id = f"zhongshu-{self.city.info.name}-{owner}-{st.name}-{topic}"
                sub = open_stream(st, mf, self.city.root).subscriber(client_id, self.deliver)
                sub.start()
                self._subscribers.append(sub)
                self._by_stream[st.name] = sub

    def connected(self) -> bool:
        """Whether every subscription is connected to its broker."""
        return all(s.connected for s in self._subscribers)

    def health(self) -> dict[str, dict[str, Any]]:
        """Stream → its state for operators: ``connected`` or ``disconnected`` (``direct``
        when messages are handed in, not subscribed), messages, records and rejected records
        so far, and seconds since the last message (None before the first). Counts and
        states only: no broker host, topic or payload."""
        now = time.monotonic()
        out: dict[str, dict[str, Any]] = {}
        for mf in self.city.members.values():
            for st in mf.streams:
                sub = self._by_stream.get(st.name)
                last = self._last.get(st.name)
                out[st.name] = {
                    "state": "direct" if sub is None else
                    "connected" if sub.connected else "disconnected",
                    "messages": self.counters.messages.get(st.name, 0),
                    "records": self.counters.records.get(st.name, 0),
                    "rejected": self.counters.rejected.get(st.name, 0),
                    "last_message_age_s": None if last is None else round(now - last, 1)}
        return out

    def deliver(self, stream: str, payload: bytes, ack: Callable[[], None] | None = None,
                seq: int | None = None) -> None:
        """Queue one message of ``stream``; ``ack`` is called once its effect is durable.
        ``seq`` (the broker's sequence number, when it has one) makes a redelivered message
        count once."""
        if self._closing:
            return  # not acknowledged: the broker delivers it again after the restart
        self._last[stream] = time.monotonic()
        self._queue.put((stream, payload, ack, seq))

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything delivered so far is committed (for tests and benchmarks)."""
        done = threading.Event()
        self._queue.put(("", b"", done.set, None))
        if not done.wait(timeout):
            raise TimeoutError("the stream committer did not catch up")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            batch = [first]
            deadline = time.monotonic() + BATCH_WAIT_S
            while len(batch) < BATCH_MESSAGES:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, deadline -
                                                             time.monotonic())))
                except queue.Empty:
                    break
            for _, _, ack, _ in self._commit_safely(batch):
                if ack is not None:
                    ack()

    def _commit_safely(self, batch: list[Message]) -> list[Message]:
        """Commit ``batch``; the messages committed (to acknowledge). When the store fails,
        none (the broker delivers them again); when a message cannot be folded, the batch is
        committed message by message and that one is kept as rejected, so one bad message
        never stops a stream."""
        try:
            self._commit(batch)
            return batch
        except sqlite3.Error:
            log.exception("stream batch not committed; the broker will redeliver it")
            return []
        except Exception:
            log.exception("a stream batch could not be folded; committing it message by "
                          "message")
        done = []
        for m in batch:
            try:
                self._commit([m])
            except sqlite3.Error:
                log.exception("stream message not committed; the broker will redeliver it")
                continue
            except Exception as e:
                stream, payload, _, seq = m
                owner = self.readers[stream][0]
                self.stores[owner].commit({}, {stream: [(f"could not be folded: {e!r}"[:200],
                                                         payload)]},
                                          {stream: seq} if seq is not None else {})
                self.counters.rejected[stream] = self.counters.rejected.get(stream, 0) + 1
            done.append(m)
        return done

    def _commit(self, batch: list[Message]) -> None:
        per_owner: dict[str, tuple[dict[str, Any], dict[str, list[Any]]]] = {}
        c = self.counters
        positions: dict[str, dict[str, int]] = {}
        parts: dict[str, list[columnar.Columns]] = {}  # streams on the columnar path
        pairs: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        for stream, payload, _, seq in batch:
            if not stream:
                continue
            owner, reader = self.readers[stream]
            if seq is not None:
                if seq <= self.stores[owner].position(stream):
                    c.duplicates[stream] = c.duplicates.get(stream, 0) + 1
                    continue  # redelivered after a crash: already counted
                positions.setdefault(owner, {})[stream] = seq
            recs, rejected = per_owner.setdefault(owner, ({}, {}))
            c.messages[stream] = c.messages.get(stream, 0) + 1
            fast = self._fast.get(stream)
            cols = None if fast is None else columnar.read(
                payload, reader.columns, reader.stream.time_column, reader.lookups, fast)
            records: list[tuple[float, dict[str, Any]]] | None = None
            if cols is None:
                parsed = reader.parse(payload)
                records = parsed.records
                if parsed.rejected:
                    c.rejected[stream] = c.rejected.get(stream, 0) + len(parsed.rejected)
                    rejected.setdefault(stream, []).extend(
                        (reason, payload) for reason in parsed.rejected)
                if fast is not None and records:
                    cols = columnar.Columns.from_records(records, fast)
            n = len(cols) if cols is not None else len(records or ())
            c.records[stream] = c.records.get(stream, 0) + n
            if not n:
                continue
            if cols is not None:
                parts.setdefault(stream, []).append(cols)
            else:
                recs.setdefault(stream, []).extend(records or ())
            for pairer in self.pairers.get(stream, ()):
                if records is None and cols is not None:
                    records = cols.records()
                pairs.setdefault(pairer.cfg.name, []).extend(pairer.pair(records or []))
        for stream, batches in parts.items():
            merged = columnar.Columns.concat(batches)
            per_owner[self.readers[stream][0]][0][stream] = (
                merged.records() if len(merged) < columnar.SMALL else merged)
        for stream, pairers in self.pairers.items():
            for pairer in pairers:
                got = pairs.get(pairer.cfg.name)
                if not got:
                    continue
                types = self._pair_types[pairer.cfg.name]
                per_owner[self.readers[stream][0]][0][pairer.cfg.name] = (
                    columnar.Columns.from_records(got, types)
                    if len(got) >= columnar.SMALL and columnar.supported(types.values())
                    else got)
        for owner, (recs, rejected) in per_owner.items():
            self.stores[owner].commit(recs, rejected, positions.get(owner, {}))
        c.commits += 1

    def stop(self) -> None:
        """Commit and acknowledge what was received, then stop subscribing and close the
        stores (what arrives meanwhile is left to the broker for the next start)."""
        self._closing = True  # what is delivered from now on is left to the broker
        if self._committer.is_alive():
            try:
                self.flush()
            except TimeoutError:
                log.warning("stream committer did not finish")
            self._stop.set()
            self._committer.join(5)
        for sub in self._subscribers:
            sub.stop()
        for stream, pairers in self.pairers.items():
            for pairer in pairers:
                self.stores[self.readers[stream][0]].save_pending(pairer.cfg.name,
                                                                  pairer.dump())
        for store in self.stores.values():
            store.close()
