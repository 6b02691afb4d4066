"""Hub throughput: concurrent clients doing point lookups with varying keys.

A hub serves the demo city (traffic police on SQLite) on loopback; C keep-alive connections
send `POST /v1/query` point lookups (a fresh random key each time, so no answer can be reused)
for D seconds. The baseline, run the same way in the same process, is a bare FastAPI endpoint
answering a small JSON body. The load generator shares the 2 cores with the hub.

    python bench/throughput.py [--seconds 30] [--connections 16] [--scale 0.3] [--rounds 2]

The hub runs with the ledger off and on, alternately, ``--rounds`` times each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import RawClient, build, free_port, pct_ms, post, serve  # type: ignore[import-not-found]

from zhongshu.demo.city import ServerSettings

BARE_APP = '''
from fastapi import FastAPI
app = FastAPI()

@app.post("/v1/query")
async def query(body: dict) -> dict:
    return {"columns": [], "rows": [[1, "cam-001a", "car"]], "row_count": 1}
'''


async def _load(url: str, token: str | None, seconds: float, connections: int,
                n_keys: int) -> tuple[int, int, list[float]]:
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds

    async def worker(seed: int) -> None:
        nonlocal errors
        rnd = random.Random(seed)
        client = RawClient(host, int(port))
        await client.connect()
        try:
            while time.monotonic() < stop:
                body = json.dumps({"sql": "SELECT * FROM traffic.passages WHERE passage_id = "
                                          f"{rnd.randint(1, n_keys)}",
                                   "purpose": "city-operations"}).encode()
                t = time.perf_counter()
                status, _ = await client.request(post("/v1/query", host, body, token))
                latencies.append(time.perf_counter() - t)
                if status != 200:
                    errors += 1
        finally:
            client.close()

    await asyncio.gather(*(worker(i) for i in range(connections)))
    return len(latencies), errors, latencies


def _report(label: str, n: int, errors: int, lat: list[float], seconds: float) -> float:
    qps = n / seconds
    print(f"  {label:<22} {qps:9.0f} q/s   p50 {pct_ms(lat, 50):7.2f} ms   "
          f"p99 {pct_ms(lat, 99):7.2f} ms   errors {errors}", flush=True)
    return qps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--scale", type=float, default=0.3)
    ap.add_argument("--rounds", type=int, default=2, help="runs with the ledger off and on")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/zhongshu-bench"))
    args = ap.parse_args()
    city = build(args.workdir, "city-sqlite", args.scale, "sqlite",
                 ServerSettings.from_env(prefix="zs_bench_"))
    import sqlite3

    con = sqlite3.connect(city / "data" / "traffic-police.sqlite")
    n_keys = con.execute("SELECT max(passage_id) FROM passages").fetchone()[0]
    con.close()
    print(f"throughput — {args.connections} connections, {args.seconds:g} s each, point "
          f"lookups over {n_keys:,} passages", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "bare_app.py").write_text(BARE_APP)
        port = free_port()
        bare = subprocess.Popen([sys.executable, "-m", "uvicorn", "bare_app:app", "--port",
                                 str(port), "--log-level", "warning", "--no-access-log"],
                                cwd=tmp, start_new_session=True)
        try:
            for _ in range(100):
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.1)
            asyncio.run(_load(f"http://127.0.0.1:{port}", None, 2, args.connections, n_keys))
            n, e, lat = asyncio.run(_load(f"http://127.0.0.1:{port}", None, args.seconds,
                                          args.connections, n_keys))
            base = _report("bare FastAPI (baseline)", n, e, lat, args.seconds)
        finally:
            os.killpg(bare.pid, signal.SIGTERM)
            bare.wait(10)

    rates: dict[str, list[float]] = {"off": [], "on": []}
    for _round in range(args.rounds):  # alternate, so drift in the machine hits both alike
        for mode in ("off", "on"):
            env = {"ZHONGSHU_LEDGER_ENABLED": "false"} if mode == "off" else {}
            with serve(city, env) as (url, token):
                asyncio.run(_load(url, token, 2, args.connections, n_keys))  # warm-up
                n, e, lat = asyncio.run(_load(url, token, args.seconds, args.connections,
                                              n_keys))
                rates[mode].append(_report(f"hub point lookups, ledger {mode}", n, e, lat,
                                           args.seconds))
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    print(f"\n  hub (ledger on) / bare FastAPI: {on / base:.2f}   (target: >= 2,000 q/s on 2 "
          "cores, load generator included)")
    print(f"  ledger on / off: {on / off:.2f}   (median {on:,.0f} vs {off:,.0f} q/s; every "
          "answer recorded and durable before it is sent; target within 15%)")


if __name__ == "__main__":
    main()
