"""Ledger: durable appends per second, proof generation and verification at 10⁶ entries,
storage per entry, witness steps per second.

Baselines, run the same way in the same process: appends against plain durable SQLite
inserts of the same entry bytes in the same batches (no hashing, no tree); proof
verification against one SHA-256 of an entry.

    python bench/ledger.py [--entries 1000000] [--producers 4]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import sqlite3
import statistics
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


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--in-flight", type=int, default=8192,
                    help="appends waiting at once (concurrent answers)")
    ap.add_argument("--proofs", type=int, default=20_000)
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
