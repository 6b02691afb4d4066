"""Streams: records per second from broker to queryable aggregate, and the lag from
publishing an event to its window being committed (queryable), at a steady rate.

Three figures, on the demo city's traffic police with a live-passages stream (1-minute
windows by camera and vehicle type; count, avg and max speed):

* ingest alone — messages handed to the stream service directly: parse, fold, commit;
  baseline in the same process: parsing the same messages with orjson and nothing else;
* through Mosquitto — a publisher process sends batched messages (QoS 1) as fast as the
  broker takes them; records/s from the first publish to the last commit;
* lag at a steady rate (default 50,000 records/s): publish time → committed, p50/p95;
* the whole live traffic block (`zhongshu.traffic.counting`: lookups, trips paired by plate,
  9 windowed datasets) ingesting the demo city's own passages, handed in directly.

With ``--store`` (a PostgreSQL server: the bench makes a database of its own there and drops
it after), "ingest alone" and the traffic block run again with the windows in that store —
as replicas sharing the streams keep them, folded by the one holding the streams' lease —
against the SQLite figures of the same run.

    python bench/stream_ingest.py [--records 1000000] [--batch 1000] [--rate 50000]
        [--store postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from _common import build, scratch_store  # type: ignore[import-not-found]

from zhongshu.config import load_city
from zhongshu.demo.city import ServerSettings
from zhongshu.node import stream_service
from zhongshu.streams.service import StreamService

STREAM = """

[[streams]]
name = "passages-live"
kind = "mqtt"
topic = "{topic}"
time_column = "passed_at"
columns = [
  {{ name = "camera_id", type = "VARCHAR" }},
  {{ name = "vehicle_type", type = "VARCHAR" }},
  {{ name = "passed_at", type = "TIMESTAMP" }},
  {{ name = "speed_kmh", type = "DOUBLE" }},
]

[[aggregates]]
dataset = "traffic.live_flow"
stream = "passages-live"
window_s = 60
lateness_s = 120
group_by = ["camera_id", "vehicle_type"]
measures = {{ vehicles = "count(*)", avg_speed = "avg(speed_kmh)", top_speed = "max(speed_kmh)" }}
"""
T0 = 1_795_000_000


def messages(n_records: int, batch: int, start: int = 0) -> list[bytes]:
    out = []
    for lo in range(start, start + n_records, batch):
        recs = [{"camera_id": f"cam-{(i * 7) % 688:04x}", "vehicle_type":
                 ("car", "bus", "truck", "taxi")[i % 4], "passed_at": T0 + i * 0.001,
                 "speed_kmh": 20 + (i * 31) % 60} for i in range(lo, lo + batch)]
        out.append(json.dumps(recs).encode())
    return out


def publish(topic: str, payloads: list[bytes], rate: float | None, stamp: bool,
            first: Any = None) -> None:
    import paho.mqtt.client as mqtt

    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    pub.max_inflight_messages_set(1000)
    pub.connect("127.0.0.1", 1883)
    pub.loop_start()
    if first is not None:
        first.value = time.time()  # the clock starts at the first publish
    t0 = time.perf_counter()
    infos = []
    for i, p in enumerate(payloads):
        if rate:
            due = t0 + i / rate
            while time.perf_counter() < due:
                time.sleep(max(0.0, min(0.002, due - time.perf_counter())))
        if stamp:
            p = json.dumps({"sent": time.time(), "i": i}).encode()[:-1] + b',"r":' + p + b"}"
        infos.append(pub.publish(topic, p, qos=1))
    for info in infos:
        info.wait_for_publish(30)
    pub.disconnect()
    pub.loop_stop()


def city_with_stream(workdir: Path, tmp: Path, topic: str) -> Path:
    base = build(workdir, "city-sqlite", 0.3, "sqlite", ServerSettings.from_env("zs_bench_"))
    root = tmp / "city"
    shutil.copytree(base, root, ignore=shutil.ignore_patterns("state", "streams", "ledger.pin"))
    with (root / "members" / "traffic-police.toml").open("a") as f:
        f.write(STREAM.format(topic=topic))
    return root


def wait_records(svc: StreamService, n: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while sum(svc.counters.records.values()) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {svc.counters.records} records arrived")
        time.sleep(0.01)
    svc.flush(60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=1000, help="records per message")
    ap.add_argument("--rate", type=int, default=50_000, help="records/s for the lag run")
    ap.add_argument("--lag-seconds", type=float, default=20)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/zhongshu-bench"))
    ap.add_argument("--store", help="also fold into a PostgreSQL store: a server URL")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="zs-stream-bench-") as tmp:
        topic = f"zhongshu-bench/{uuid.uuid4().hex[:8]}/passages"
        root = city_with_stream(args.workdir, Path(tmp), topic)
        payloads = messages(args.records, args.batch)
        print(f"stream ingest — {args.records:,} records in messages of {args.batch:,}",
              flush=True)

        t = time.perf_counter()
        for p in payloads:
            orjson.loads(p)
        parse_rate = args.records / (time.perf_counter() - t)

        direct = ingest_alone(root, payloads, args.records)
        print(f"  ingest alone:   {direct:>10,.0f} records/s  (parse-only baseline "
              f"{parse_rate:,.0f}/s → {direct / parse_rate:.2f})", flush=True)
        if args.store:
            with scratch_store(args.store) as url:
                pg = ingest_alone(root, payloads, args.records, url)
            print(f"  ingest alone, PostgreSQL store: {pg:>10,.0f} records/s  "
                  f"({pg / direct:.2f}× the SQLite file)", flush=True)

        svc = StreamService(load_city(root))
        svc.start()
        while not svc.connected():
            time.sleep(0.05)
        before = sum(svc.counters.records.values())
        more = messages(args.records, args.batch, start=args.records)
        ctx = multiprocessing.get_context("spawn")
        first = ctx.Value("d", 0.0)
        proc = ctx.Process(target=publish, args=(topic, more, None, False, first))
        proc.start()
        wait_records(svc, before + args.records)
        through = args.records / (time.time() - first.value)
        proc.join()
        print(f"  via Mosquitto:  {through:>10,.0f} records/s  (publisher in another "
              "process, QoS 1, acknowledged after commit)", flush=True)

        svc.stop()
        svc = StreamService(load_city(root))
        lags: list[float] = []
        orig = svc.deliver

        def timed(stream: str, payload: bytes, ack: Any = None, seq: Any = None,
                  **keys: Any) -> None:
            sent = json.loads(payload[:payload.index(b',"r":')] + b"}")["sent"]

            def done() -> None:
                lags.append(time.time() - sent)
                if ack is not None:
                    ack()
            orig(stream, payload, done, seq, **keys)

        svc.deliver = timed  # type: ignore[method-assign]
        svc.readers["passages-live"][1].parse = _unwrap(svc.readers["passages-live"][1].parse)
        svc.start()
        while not svc.connected():
            time.sleep(0.05)
        n = int(args.rate * args.lag_seconds)
        steady = messages(n, args.batch, start=2 * args.records)
        proc = multiprocessing.get_context("spawn").Process(
            target=publish, args=(topic, steady, args.rate / args.batch, True))
        proc.start()
        proc.join()
        time.sleep(1.0)
        svc.stop()
        lags.sort()
        p50 = statistics.median(lags)
        p95 = lags[int(0.95 * (len(lags) - 1))]
        print(f"  lag at {args.rate:,} records/s ({len(lags):,} messages): p50 "
              f"{p50 * 1e3:.0f} ms, p95 {p95 * 1e3:.0f} ms  (target p95 ≤ 1 s)")
        print(f"  target ≥ 200,000 records/s with batched messages: ingest alone "
              f"{direct / 200_000:.2f}×, via Mosquitto {through / 200_000:.2f}× of it",
              flush=True)
        traffic = traffic_block(root, args.batch)
        print(f"  traffic block:  {traffic:>10,.0f} records/s  (demo passages; 9 datasets, "
              f"trips paired by plate; {traffic / direct:.2f}× the single aggregate)")
        if args.store:
            with scratch_store(args.store) as url:
                pg = traffic_block(root, args.batch, url)
            print(f"  traffic block, PostgreSQL store: {pg:>10,.0f} records/s  "
                  f"({pg / traffic:.2f}× the SQLite file)")


def ingest_alone(root: Path, payloads: list[bytes], records: int, store: str = "") -> float:
    """Records/s of messages handed to the stream service (windows in ``store``, or the
    city's SQLite file)."""
    svc = stream_service(load_city(root), store)
    svc.start(subscribe=False)
    while not svc.folding.is_set():  # the streams' lease, on a PostgreSQL store
        time.sleep(0.01)
    t = time.perf_counter()
    for p in payloads:
        svc.deliver("passages-live", p)
    wait_records(svc, records)
    rate = records / (time.perf_counter() - t)
    svc.stop()
    return rate


def traffic_block(base: Path, batch: int, store: str = "") -> float:
    """Records/s of the demo's passages through the whole live traffic block (windows in
    ``store``, or the city's SQLite file)."""
    import os

    from zhongshu.node import Node
    from zhongshu.policy.identity import Caller
    from zhongshu.traffic import counting

    os.environ.setdefault("ZHONGSHU_ROW_CAP", "10000000")  # the whole day, for the owner
    base.parent.chmod(0o755)
    root = base.parent / f"traffic-city{'-pg' if store else ''}"
    shutil.copytree(base, root, ignore=shutil.ignore_patterns("state", "streams", "ledger.pin"))
    text = (root / "members" / "traffic-police.toml").read_text()
    (root / "members" / "traffic-police.toml").write_text(
        text[:text.index("[[streams]]")] + counting.live_block("mqtt", "unused/bench"))
    if store:  # the hub serving the lookups reads its windows there too
        os.environ["ZHONGSHU_STORE_URL"] = store
    try:
        city = load_city(root)
        svc = stream_service(city, store)  # its window tables exist before the hub checks them
        query = Node.open(city).query
    finally:
        os.environ.pop("ZHONGSHU_STORE_URL", None)
    owner = Caller(query.catalog.members["traffic-police"])
    svc.load_lookups(lambda _o, sql: query.run(owner, sql, "bench").table.to_pylist())
    rows = query.run(owner, "SELECT camera_id, plate, vehicle_type, epoch(passed_at) AS "
                     "passed_at, speed_kmh FROM traffic.passages ORDER BY passed_at, "
                     "passage_id", "bench", limit=10_000_000).table.to_pylist()
    query.close()
    payloads = [orjson.dumps(rows[i:i + batch]) for i in range(0, len(rows), batch)]
    svc.start(subscribe=False)
    while not svc.folding.is_set():
        time.sleep(0.01)
    t = time.perf_counter()
    for p in payloads:
        svc.deliver("passages-live", p)
    wait_records(svc, len(rows))
    rate = len(rows) / (time.perf_counter() - t)
    svc.stop()
    return rate


def _unwrap(parse: Any) -> Any:
    """The lag run wraps each message as {"sent", "i", "r": [records]}: parse the records."""
    def inner(payload: bytes) -> Any:
        at = payload.find(b',"r":')
        return parse(payload[at + 5:-1] if at >= 0 else payload)
    return inner


if __name__ == "__main__":
    sys.exit(main())
