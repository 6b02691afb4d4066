"""The stream service: subscribers hand messages to one committer, which parses them,
folds them into their windows and commits, then acknowledges them to the broker.

Each message counts once: a NATS message by its stream sequence number, kept with the
batch that folded it (the broker delivers again what was not acknowledged: after a crash,
or when a commit outlasts the consumer's ack wait); an MQTT message delivered again (its
DUP flag set: the broker never saw its acknowledgement) by its digest among the last ones
committed — so two messages with the same bytes, the second one redelivered, would count
once (a publisher's messages carry their event time and sensor: in practice never).

With the hub's state in PostgreSQL the windows are there too, and replicas share the
streams: one of them at a time — the holder of the streams' lease (an advisory lock of
the store, handed in by the composition root) — subscribes and folds; the others stand by and
take over within a second of its death, resuming its broker sessions (the same NATS durable
consumer; the same MQTT client id, so the broker's session hands over the messages queued
for it) and its state (watermarks, waiting pairs) from the store. One folder keeps the
arrival order a pairs stage and the watermarks rely on; ``docs/operations.md`` says what it
costs.
"""

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

import psycopg

from zhongshu.config import City, Lookup, stream_columns, stream_store, window_schema
from zhongshu.sources import Subscriber, open_stream
from zhongshu.streams import columnar
from zhongshu.streams.pairs import Pairer
from zhongshu.streams.pgwindows import LeaseLost, PostgresWindowStore
from zhongshu.streams.records import Lookups, Reader
from zhongshu.streams.windows import Aggregate, Batch, Redelivered, WindowStore

log = logging.getLogger("zhongshu.streams")
BATCH_MESSAGES = 10_000
BATCH_WAIT_S = 0.05
LEASE_POLL_S = 0.5  # how often a standing-by replica tries the streams' lease
FLOOR_EVERY_S = 5.0  # how often acknowledged sequence numbers are forgotten
#: a message's key: its NATS stream sequence number, or (digest, redelivered) for MQTT
Key = int | tuple[bytes, bool] | None
Message = tuple[str, bytes, Callable[[], None] | None, Key]
#: the store is away (or busy): the batch is left to the broker, to come again
OUTAGE = (sqlite3.OperationalError, psycopg.OperationalError, LeaseLost)


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

    def __init__(self, city: City, store_url: str = "", lease: Any = None) -> None:
        """The city's streams, their windows in its SQLite files — or, given the URL of the
        city's PostgreSQL store (``zhongshu.node.store_url``), there, folded while this
        process holds ``lease`` (the streams' lease on that store:
        ``zhongshu.node.stream_service`` builds both).

        Raises:
            ValueError: a store URL without a lease.
        """
        if store_url and lease is None:
            raise ValueError("streams folded into a shared store need the streams' lease")
        self.city = city
        self._lease: Any = lease if store_url else None
        self.stores: dict[str, WindowStore | PostgresWindowStore] = {}
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
            if store_url:
                store: WindowStore | PostgresWindowStore = PostgresWindowStore(
                    store_url, window_schema(owner), owner, aggs, mf.streams,
                    fence=self._fence, reader=city.store.windows_user)
            else:
                store = WindowStore(city.root / stream_store(owner), aggs, mf.streams)
            self.stores[owner] = store
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
                    self.pairers.setdefault(st.name, []).append(Pairer(pc, st.time_column))
        self.counters = Counters()
        self._queue: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._closing = False
        self._stop = threading.Event()
        self._subscribers: list[Subscriber] = []
        self._by_stream: dict[str, Subscriber] = {}
        self._last: dict[str, float] = {}  # stream → when its last message arrived (monotonic)
        self._committer = threading.Thread(target=self._run, name="stream-committer",
                                           daemon=True)
        self._leader = threading.Thread(target=self._lead, name="stream-lease", daemon=True)
        #: whether this process folds the streams now (always, on the embedded store)
        self.folding = threading.Event()
        self._floors: dict[str, int] = {}
        self._floors_at = 0.0
        self._state = threading.RLock()  # commits, and taking up the stored state
        self._stale = False  # the state in memory is ahead of the store's: take it up again
        if self._lease is None:
            self._resume()
            self.folding.set()

    def _fence(self, cur: Any) -> None:
        if not self._lease.holds_in(cur):
            raise LeaseLost("this replica no longer holds the streams' lease")

    def _resume(self) -> None:
        """Take up the stored state: watermarks, and the records waiting for a pair."""
        self._stale = True
        for store in self.stores.values():
            store.load_state()
        for stream, pairers in self.pairers.items():
            store = self.stores[self.readers[stream][0]]
            for i, pairer in enumerate(pairers):
                fresh = pairers[i] = Pairer(pairer.cfg, pairer.time_column)
                fresh.lookups = pairer.lookups
                fresh.restore(store.waiting(pairer.cfg.name))
        self._stale = False

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
        :meth:`deliver` directly, e.g. by a benchmark) subscribe to every stream — at once
        on the embedded store, else once this replica holds the streams' lease."""
        self._committer.start()
        if self._lease is not None:
            self._subscribe = subscribe
            self._leader.start()
            return
        if subscribe:
            self._subscribe_all()

    def _subscribe_all(self) -> None:
        for owner, mf in self.city.members.items():
            for st in mf.streams:
                sub = open_stream(st, mf, self.city.root).subscriber(
                    self._client_id(owner, st.name, st.topic), self.deliver)
                sub.start()
                self._subscribers.append(sub)
                self._by_stream[st.name] = sub

    def _client_id(self, owner: str, stream: str, topic: str) -> str:
        """The broker session (MQTT client id, NATS durable) of one stream. The broker keeps
        a persistent session per client id: a new topic gets a new session rather than the
        old topic's messages. On the embedded store, two hubs of a city in different folders
        (a test, a staging copy) do not take each other's; replicas sharing a store share
        it — one at a time, the lease's holder."""
        where = "" if self._lease is not None else f"\0{self.city.root}"
        digest = hashlib.sha256(f"{topic}{where}".encode()).hexdigest()[:8]
        return f"zhongshu-{self.city.info.name}-{owner}-{stream}-{digest}"

    def _lead(self) -> None:
        """Stand by until this replica holds the streams' lease, then fold; give up folding
        when the lease is lost (the store was away), and stand by again."""
        lease = self._lease
        while not self._stop.is_set():
            try:
                if not self.folding.is_set():
                    if lease.try_take():
                        with self._state:
                            self._resume()
                        self.folding.set()
                        log.info("this replica holds the streams' lease: folding the streams")
                        if self._subscribe:
                            self._subscribe_all()
                elif not lease.held():
                    self._stand_by("the streams' lease was lost")
            except Exception as e:  # the store is away: not folding, said once a try
                if self.folding.is_set():
                    self._stand_by(f"the streams' lease cannot be checked: {type(e).__name__}")
                lease.release()
            self._stop.wait(LEASE_POLL_S)

    def _stand_by(self, why: str) -> None:
        """Stop folding: unsubscribe, and leave every message not committed to the broker
        (it delivers them again to the next holder)."""
        log.warning("%s; standing by", why)
        self.folding.clear()
        with self._state:  # a commit under way ends first (its fence refuses it)
            subs, self._subscribers, self._by_stream = self._subscribers, [], {}
        for sub in subs:
            sub.stop()

    def connected(self) -> bool:
        """Whether every subscription is connected to its broker (a replica standing by, which
        subscribes to none, is connected)."""
        return all(s.connected for s in self._subscribers)

    def health(self) -> dict[str, dict[str, Any]]:
        """Stream → its state for operators: ``connected`` or ``disconnected`` (``direct``
        when messages are handed in, not subscribed; ``standby`` on a replica that does not
        hold the streams' lease), messages, records and rejected records so far (by this
        process), and seconds since the last message (None before the first). Counts and
        states only: no broker host, topic or payload."""
        now = time.monotonic()
        out: dict[str, dict[str, Any]] = {}
        for mf in self.city.members.values():
            for st in mf.streams:
                sub = self._by_stream.get(st.name)
                last = self._last.get(st.name)
                out[st.name] = {
                    "state": "standby" if not self.folding.is_set() else
                    "direct" if sub is None else
                    "connected" if sub.connected else "disconnected",
                    "messages": self.counters.messages.get(st.name, 0),
                    "records": self.counters.records.get(st.name, 0),
                    "rejected": self.counters.rejected.get(st.name, 0),
                    "last_message_age_s": None if last is None else round(now - last, 1)}
        return out

    def deliver(self, stream: str, payload: bytes, ack: Callable[[], None] | None = None,
                seq: int | None = None, *, redelivered: bool | None = None) -> None:
        """Queue one message of ``stream``; ``ack`` is called once its effect is durable.
        ``seq`` (the broker's sequence number, when it has one) makes a redelivered message
        count once; a broker without one says whether it delivers this one again
        (``redelivered``: MQTT's DUP flag), which is then looked up by its digest."""
        if self._closing or not self.folding.is_set():
            return  # not acknowledged: the broker delivers it again to the next folder
        self._last[stream] = time.monotonic()
        key: Key = seq if redelivered is None else (hashlib.blake2b(
            payload, digest_size=16).digest(), redelivered)
        self._queue.put((stream, payload, ack, key))

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
            done = [m for m in batch if not m[0]]  # flush markers: answered in any case
            by_owner: dict[str, list[Message]] = {}  # one store, one transaction, each
            for m in batch:
                if m[0]:
                    by_owner.setdefault(self.readers[m[0]][0], []).append(m)
            if self.folding.is_set():  # else the lease went: the broker delivers them again
                with self._state:
                    done = [m for part in by_owner.values()
                            for m in self._commit_safely(part)] + done
            for _, _, ack, _ in done:
                if ack is not None:
                    ack()
            self._forget_acknowledged()

    def _forget_acknowledged(self) -> None:
        """Every few seconds, tell the stores how far each NATS stream is acknowledged."""
        now = time.monotonic()
        if now - self._floors_at < FLOOR_EVERY_S:
            return
        self._floors_at = now
        for stream, sub in list(self._by_stream.items()):
            floor = getattr(sub, "floor", 0)
            if floor > self._floors.get(stream, 0):
                try:
                    self.stores[self.readers[stream][0]].forget(stream, floor)
                    self._floors[stream] = floor
                except OUTAGE as e:
                    log.warning("stream %s: acknowledged messages not forgotten yet: %s",
                                stream, type(e).__name__)

    def _commit_safely(self, batch: list[Message]) -> list[Message]:
        """Commit ``batch`` (messages of one owner's streams); the messages committed or
        found committed already (to acknowledge). When the store is away, none (the broker
        delivers them again); when a message cannot be folded or stored (a value the store
        refuses), the batch is committed message by message and that one is kept as
        rejected, so one bad message never stops a stream."""
        try:
            self._commit(batch)
            return batch
        except LeaseLost:
            log.warning("stream batch not committed: the streams' lease was lost")
            self._after_failure()
            return []
        except OUTAGE as e:
            log.error("stream batch not committed (%s); the broker will deliver it again",
                      type(e).__name__)
            self._after_failure()
            return []
        except Exception:
            log.exception("a stream batch could not be folded; committing it message by "
                          "message")
            self._after_failure()
        done: list[Message] = []
        for m in batch:
            try:
                self._commit([m])
            except OUTAGE as e:  # the rest, in order, is left to the broker too
                log.error("stream messages not committed (%s); the broker will deliver them "
                          "again", type(e).__name__)
                self._after_failure()
                return done
            except Exception as e:
                self._after_failure()
                stream, payload, _, key = m
                owner = self.readers[stream][0]
                try:
                    seqs, digests = self._keys([m])
                    self.stores[owner].commit(Batch(
                        rejected={stream: [(f"could not be folded: {e!r}"[:200], payload)]},
                        seqs=seqs, digests=digests))
                except Redelivered:
                    done.append(m)  # kept already, by the replica that died after it
                    continue
                except Exception as again:  # the rest, in order, is left to the broker too
                    log.error("stream message neither folded nor kept as rejected (%s); "
                              "the broker will deliver it again", type(again).__name__)
                    self._after_failure()
                    return done
                self.counters.rejected[stream] = self.counters.rejected.get(stream, 0) + 1
            done.append(m)
        return done

    def _after_failure(self) -> None:
        """A commit failed: what the folds changed in memory (watermarks, waiting pairs) is
        put back as stored, since the broker delivers the batch again — now, or before the
        next commit if the store cannot be read now."""
        self._stale = True
        try:
            self._resume()
        except OUTAGE as e:
            log.warning("stream state not reloaded yet: %s", type(e).__name__)

    @staticmethod
    def _keys(batch: list[Message]) -> tuple[dict[str, list[int]], dict[str, list[bytes]]]:
        """The keys a batch's messages are kept by: ``seqs`` and ``digests`` of a Batch."""
        seqs: dict[str, list[int]] = {}
        digests: dict[str, list[bytes]] = {}
        for stream, _, _, key in batch:
            if isinstance(key, int):
                seqs.setdefault(stream, []).append(key)
            elif key is not None:
                digests.setdefault(stream, []).append(key[0])
        return seqs, digests

    def _new(self, batch: list[Message]) -> list[Message]:
        """The messages of ``batch`` not committed before (nor earlier in the batch)."""
        c = self.counters
        seqs: dict[str, list[int]] = {}
        again: dict[str, list[bytes]] = {}
        for stream, _, _, key in batch:
            if isinstance(key, int):
                seqs.setdefault(stream, []).append(key)
            elif key is not None and key[1]:
                again.setdefault(stream, []).append(key[0])
        old: dict[str, set[Any]] = {}
        for stream, qs in seqs.items():
            old[stream] = self.stores[self.readers[stream][0]].seen(stream, qs)
        for stream, ds in again.items():
            old.setdefault(stream, set()).update(
                self.stores[self.readers[stream][0]].seen_digests(stream, ds))
        out, taken = [], set()
        for m in batch:
            stream, _, _, key = m
            if not stream:
                continue
            k = key if not isinstance(key, tuple) else key[0]
            # a sequence number is one message; a digest is looked up only when the broker
            # says it delivers the message again (two sent with the same bytes both count)
            looked = isinstance(key, int) or (isinstance(key, tuple) and key[1])
            if looked and (k in old.get(stream, ()) or (stream, k) in taken):
                c.duplicates[stream] = c.duplicates.get(stream, 0) + 1
                continue  # delivered again: already counted
            if key is not None:
                taken.add((stream, k))
            out.append(m)
        return out

    def _commit(self, batch: list[Message]) -> None:
        for _ in range(3):
            try:
                if self._stale:  # a reload failed: never fold on top of a refused attempt
                    self._resume()
                self._commit_new(self._new(batch))
                return
            except Redelivered as e:  # committed meanwhile by a replica that then died
                log.info("stream %s: a message came again after its commit; counted once",
                         e.stream)
                self._after_failure()
        raise LeaseLost("another replica keeps committing this stream's messages")

    def _commit_new(self, batch: list[Message]) -> None:
        per_owner: dict[str, Batch] = {}
        c = Counters()  # added to the service's once committed
        parts: dict[str, list[columnar.Columns]] = {}  # streams on the columnar path
        pairs: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        for m in batch:
            stream, payload, _, _ = m
            owner, reader = self.readers[stream]
            out = per_owner.get(owner)
            if out is None:
                out = per_owner[owner] = Batch()
                out.seqs, out.digests = self._keys(
                    [m for m in batch if self.readers[m[0]][0] == owner])
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
                    out.rejected.setdefault(stream, []).extend(
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
                out.records.setdefault(stream, []).extend(records or ())
            for pairer in self.pairers.get(stream, ()):
                if records is None and cols is not None:
                    records = cols.records()
                pairs.setdefault(pairer.cfg.name, []).extend(pairer.pair(records or []))
        for stream, batches in parts.items():
            merged = columnar.Columns.concat(batches)
            per_owner[self.readers[stream][0]].records[stream] = (
                merged.records() if len(merged) < columnar.SMALL else merged)
        for stream, pairers in self.pairers.items():
            for pairer in pairers:
                waiting, horizon = pairer.take_changes()
                if not waiting and horizon is None and not pairs.get(pairer.cfg.name):
                    continue
                out = per_owner.setdefault(self.readers[stream][0], Batch())
                out.waiting[pairer.cfg.name] = waiting
                if horizon is not None:
                    out.horizons[pairer.cfg.name] = horizon
                got = pairs.get(pairer.cfg.name)
                if not got:
                    continue
                types = self._pair_types[pairer.cfg.name]
                out.records[pairer.cfg.name] = (
                    columnar.Columns.from_records(got, types)
                    if len(got) >= columnar.SMALL and columnar.supported(types.values())
                    else got)
        for owner, out in per_owner.items():
            self.stores[owner].commit(out)
        total = self.counters
        for mine, theirs in ((c.messages, total.messages), (c.records, total.records),
                             (c.rejected, total.rejected)):
            for stream, n in mine.items():
                theirs[stream] = theirs.get(stream, 0) + n
        total.commits += 1

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
        if self._committer.is_alive():
            self._committer.join(5)
        if self._leader.is_alive():
            self._leader.join(5)
        for sub in self._subscribers:
            sub.stop()
        if self._lease is not None:
            self._lease.release()
        for store in self.stores.values():
            store.close()
