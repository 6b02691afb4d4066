"""Ledger: durable appends per second, proof generation and verification at 10⁶ entries,
storage per entry, witness steps per second.

Baselines, run the same way in the same process: appends against plain durable SQLite
inserts of the same entry bytes in the same batches (no hashing, no tree); proof
verification against one SHA-256 of an entry.

With ``--store postgresql://…`` (a server where the URL's user may create databases), the
same appends also go to a ledger in PostgreSQL (a database made for the run and dropped
after), against the embedded SQLite ledger's median of the same run; then its proof p95, the
time from the sequencer process's SIGKILL to the next durable append, and the time the
sequencer's lease takes to move to another process after its holder's SIGKILL.

    python bench/ledger.py [--entries 1000000] [--in-flight 8192] [--store URL]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zhongshu.ledger import Ledger, Witness, entry, merkle, note
from zhongshu.ledger.store import SqliteLedgerStore


def _entry(i: int) -> dict:
    return entry.exchange(f"app-{i % 13}", "parking-guidance", f"{i:064x}",
                          {"parking_westlake.garages": ["garage_id", "total_spaces"],
                           "traffic.passages": ["camera_id", "passed_at"]},
                          ["parking-westlake:g1", "traffic-police:g3"], f"{i * 7:064x}",
                          "json", i % 100, False)


def appends(lg: Ledger, n: int, in_flight: int) -> float:
    """Seconds to append ``n`` entries (built beforehand: the hub builds them while
    answering) the hub's way — ``record_async`` from the event loop, ``in_flight`` waiting
    at once (clients each awaiting their receipt) — and see every one durable."""
    work = [_entry(i) for i in range(n)]

    async def run() -> None:
        it = iter(work)

        async def client() -> None:  # like a connection: one answer at a time
            for e in it:
                await lg.record_async(e, ["traffic.passages"])

        await asyncio.gather(*(client() for _ in range(in_flight)))

    t = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - t


def baseline_inserts(path: Path, bodies: list[bytes], batch: int) -> float:
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=FULL")
    c.execute("CREATE TABLE e (idx INTEGER PRIMARY KEY, time_ms INTEGER, body BLOB)")
    t = time.perf_counter()
    for lo in range(0, len(bodies), batch):
        c.execute("BEGIN IMMEDIATE")
        c.executemany("INSERT INTO e VALUES (?, ?, ?)",
                      [(lo + i, 0, b) for i, b in enumerate(bodies[lo:lo + batch])])
        c.execute("COMMIT")
    dt = time.perf_counter() - t
    c.close()
    return dt


LEASE_HOLDER = """
import sys, time
from zhongshu.ledger.lease import Lease
lease = Lease(sys.argv[1])
lease.take()
print("held", repr(time.time()), flush=True)
time.sleep(3600)
"""


def postgres(url: str, n: int, in_flight: int, sqlite_rate: float, proofs: int) -> None:
    """The PostgreSQL section: a database of its own on ``url``'s server, dropped after."""
    import uuid

    import psycopg
    from psycopg.conninfo import make_conninfo

    from zhongshu.ledger.postgres import PostgresLedgerStore
    from zhongshu.stores import postgres as pg
    from zhongshu.stores import schema

    name = f"zs_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    db_url = make_conninfo(url, dbname=name)
    try:
        db = pg.Database(db_url)
        schema.upgrade(db)
        db.close()
        with tempfile.TemporaryDirectory(prefix="zs-ledger-bench-pg-") as tmp:
            lg = Ledger(PostgresLedgerStore(db_url), "bench/log",
                        note.Signer.load_or_create(Path(tmp) / "k", "bench/log", note.ED25519))
            lg.start()
            print(f"ledger in PostgreSQL ({pg.label_of(url)}, synchronous_commit on) — "
                  f"{n:,} entries, {in_flight:,} in flight, sequencer process", flush=True)
            rates, done, chunk = [], 0, max(n // 5, 1)
            while done < n:
                k = min(chunk, n - done)
                dt = appends(lg, k, in_flight)
                done += k
                rates.append(k / dt)
                print(f"  appends {done - k:>9,}–{done:<9,} {k / dt:>9,.0f}/s", flush=True)
            med = statistics.median(rates)
            print(f"  median {med:,.0f} durable appends/s (target ≥ 20,000 batched); the "
                  f"embedded SQLite ledger in this run: {sqlite_rate:,.0f}/s → "
                  f"PostgreSQL/SQLite {med / sqlite_rate:.2f}")
            ckpt = lg.publish()
            assert ckpt is not None
            size, rng, gen = ckpt.size, random.Random(2), []
            for _ in range(proofs):
                i = rng.randrange(size)
                t = time.perf_counter()
                lg.inclusion(i, size)
                gen.append(time.perf_counter() - t)
            print(f"  inclusion proof at {size:,}: p50 {pct(gen, .5) * 1e3:.3f} ms, p95 "
                  f"{pct(gen, .95) * 1e3:.3f} ms ({proofs:,} proofs; full tiles cached)")
            proc = lg.appender.process
            assert proc is not None and proc.pid is not None
            # the first append after the kill fails or restarts the sequencer; count until
            # one is durable
            os.kill(proc.pid, signal.SIGKILL)
            proc.join(5)
            t = time.perf_counter()

            async def next_durable() -> int:
                while True:
                    try:
                        return (await lg.record_async(_entry(0), [])).index
                    except Exception:
                        await asyncio.sleep(0.01)

            idx = asyncio.run(next_durable())
            print(f"  sequencer process SIGKILLed → next append durable (index {idx:,}) in "
                  f"{(time.perf_counter() - t) * 1e3:,.0f} ms (a new sequencer process)")
            lg.close()
            replicas(db_url, Path(tmp) / "k")
            holder = subprocess.Popen([sys.executable, "-c", LEASE_HOLDER, db_url],
                                      stdout=subprocess.PIPE, text=True,
                                      env={**os.environ, "PYTHONPATH": str(
                                          Path(__file__).resolve().parent.parent)})
            assert holder.stdout is not None and holder.stdout.readline().startswith("held")
            from zhongshu.ledger.lease import Lease

            lease = Lease(db_url)
            assert not lease.try_take()
            holder.send_signal(signal.SIGKILL)
            t = time.perf_counter()
            lease.take(timeout_s=30, poll_s=0.05)
            print(f"  lease holder SIGKILLed → lease taken by another process in "
                  f"{(time.perf_counter() - t) * 1e3:,.0f} ms (polling every 50 ms; the "
                  "hub polls every checkpoint interval)")
            lease.release()
            holder.wait()
            holder.stdout.close()
    finally:
        with psycopg.connect(url, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def replicas(db_url: str, key: Path, per_writer: int = 10_000, in_flight: int = 16,
             rounds: int = 3) -> None:
    """One log, one writer or two (a replica's ledger each: its own sequencer process),
    ``in_flight`` appends waiting at a time per writer, as a replica's connections would be:
    the durable appends/s of both together, alternating, ``rounds`` times each."""
    import threading

    from zhongshu.ledger.postgres import PostgresLedgerStore

    rates: dict[int, list[float]] = {1: [], 2: []}
    signer = note.Signer.load_or_create(key, "bench/log", note.ED25519)
    for _ in range(rounds):
        for writers in (1, 2):
            ledgers = [Ledger(PostgresLedgerStore(db_url), "bench/log", signer)
                       for _ in range(writers)]
            for lg in ledgers:
                lg.start()
            threads = [threading.Thread(target=appends, args=(lg, per_writer, in_flight))
                       for lg in ledgers]
            t = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            rates[writers].append(writers * per_writer / (time.perf_counter() - t))
            for lg in ledgers:
                lg.close()
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"  replicas' writers, {in_flight} appends in flight each: one {one:,.0f}/s, two "
          f"{two:,.0f}/s in all (two/one {two / one:.2f}; medians of {rounds})", flush=True)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--in-flight", type=int, default=8192,
                    help="appends waiting at once (concurrent answers)")
    ap.add_argument("--proofs", type=int, default=20_000)
    ap.add_argument("--store", default="", help="also a ledger in PostgreSQL: a server's URL "
                    "(postgresql://…; a database is created there for the run and dropped)")
    ap.add_argument("--store-entries", type=int, default=200_000,
                    help="entries appended to the PostgreSQL ledger")
    args = ap.parse_args()
    n = args.entries
    with tempfile.TemporaryDirectory(prefix="zs-ledger-bench-") as tmp:
        d = Path(tmp)
        lg = Ledger(SqliteLedgerStore(d / "ledger.db"), "bench/log",
                    note.Signer.load_or_create(d / "k", "bench/log", note.ED25519))
        lg.start()
        print(f"ledger — {n:,} entries, {args.in_flight:,} in flight, sequencer process "
              "(SQLite WAL, fsync per batch)", flush=True)
        rates = []
        done = 0
        chunk = max(n // 5, 1)
        while done < n:
            k = min(chunk, n - done)
            batches0 = lg.batches
            dt = appends(lg, k, args.in_flight)
            done += k
            rates.append(k / dt)
            print(f"  appends {done - k:>9,}–{done:<9,} {k / dt:>9,.0f}/s  "
                  f"(mean batch sent {k / max(1, lg.batches - batches0):,.0f})", flush=True)
        ckpt = lg.publish()
        assert ckpt is not None
        med = statistics.median(rates)
        bodies = [lg.store.entry(i) for i in range(0, min(n, 200_000))]
        base_dt = baseline_inserts(d / "base.db", bodies, args.in_flight)
        base_rate = len(bodies) / base_dt
        print(f"  median {med:,.0f} appends/s (target ≥ 50,000); plain SQLite inserts of the "
              f"same bytes in the same batches: {base_rate:,.0f}/s → ledger/plain "
              f"{med / base_rate:.2f}")
        if args.store:
            postgres(args.store, args.store_entries, args.in_flight, med, args.proofs)

        lg.store.close()
        c = sqlite3.connect(d / "ledger.db")
        body_bytes = c.execute("SELECT sum(length(body)) FROM entries").fetchone()[0]
        c.close()
        total = os.path.getsize(d / "ledger.db")
        print(f"  storage: {total / n:,.0f} bytes/entry in all, {body_bytes / n:,.0f} the "
              f"entry itself → {(total - body_bytes) / n:,.0f} bytes/entry beyond it "
              "(target ≤ 350; includes the per-dataset usage index)")

        size = ckpt.size
        rng = random.Random(1)
        idx = [rng.randrange(size) for _ in range(args.proofs)]
        gen = []
        proofs = []
        for i in idx:
            t = time.perf_counter()
            p = lg.inclusion(i, size)
            gen.append(time.perf_counter() - t)
            proofs.append(p)
        leaves = {i: merkle.leaf_hash(lg.store.entry(i)) for i in idx[:5000]}
        ver = []
        for i, p in list(zip(idx, proofs, strict=True))[:5000]:
            t = time.perf_counter()
            ok = merkle.verify_inclusion(i, size, leaves[i], p, ckpt.root)
            ver.append(time.perf_counter() - t)
            assert ok
        body = lg.store.entry(idx[0])
        t = time.perf_counter()
        for _ in range(5000):
            merkle.leaf_hash(body)
        sha = (time.perf_counter() - t) / 5000
        depth = len(proofs[0])
        print(f"  inclusion proof at {size:,}: p50 {pct(gen, .5) * 1e3:.3f} ms, p95 "
              f"{pct(gen, .95) * 1e3:.3f} ms (target p95 ≤ 1 ms; {depth} hashes)")
        cons = []
        for _ in range(2000):
            a = rng.randrange(1, size)
            t = time.perf_counter()
            lg.consistency(a, size)
            cons.append(time.perf_counter() - t)
        print(f"  consistency proof: p50 {pct(cons, .5) * 1e3:.3f} ms, p95 "
              f"{pct(cons, .95) * 1e3:.3f} ms")
        print(f"  verify inclusion: median {statistics.median(ver) * 1e6:.1f} µs (target ≤ 50 "
              f"µs) = {statistics.median(ver) / sha:.0f}× one leaf SHA-256 "
              f"({sha * 1e6:.2f} µs)")
        scale = math.ceil(math.log2(1e8)) / max(1, depth)
        print(f"  at 10⁸ entries (extrapolated, proofs grow with log₂ n: ×{scale:.2f}, one "
              f"more B-tree level): proof p95 ≈ {pct(gen, .95) * scale * 1.1 * 1e3:.3f} ms, "
              f"verify ≈ {statistics.median(ver) * scale * 1e6:.1f} µs, storage "
              f"≈ {(total - body_bytes) / n * 1e8 / 2**30:.1f} GiB beyond the entries")

        # witness steps: checkpoints every 1,000 entries, each cosigned after its proof
        w = Witness(SqliteLedgerStore(d / "w.db"),
                    note.Signer.load_or_create(d / "wk", "bench/witness", note.COSIGNATURE_V1),
                    {"bench/log": lg.log_key.verifier})
        steps, old = 0, 0
        sizes = list(range(1000, min(size, 2_000_000), 1000))[:500]
        t = time.perf_counter()
        for s in sizes:
            r = merkle.root(lg.store.hash, s)
            b = note.body("bench/log", s, r)
            proof = lg.consistency(old, s) if old else []
            req = (f"old {old}\n" + "".join(note.b64(h) + "\n" for h in proof) + "\n" + b
                   + "\n" + lg.log_key.sign_note(b)).encode()
            a = w.add_checkpoint(req)
            assert a.status == 200, a.body
            old = s
            steps += 1
        dt = time.perf_counter() - t
        print(f"  witness: {steps / dt:,.0f} add-checkpoint steps/s (proof + signature check "
              "+ durable state + cosignature; proofs built by the log in the same loop)")
        lg.close()


if __name__ == "__main__":
    main()
