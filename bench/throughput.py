"""Hub throughput: concurrent clients doing point lookups with varying keys.

A hub serves the demo city (traffic police on SQLite) on loopback; C keep-alive connections
send `POST /v1/query` point lookups (a fresh random key each time, so no answer can be reused)
for D seconds. The baseline, run the same way in the same process, is a bare FastAPI endpoint
answering a small JSON body. The load generator shares the 2 cores with the hub.

    python bench/throughput.py [--seconds 30] [--connections 16] [--scale 0.3] [--rounds 2]
        [--store postgresql://postgres@127.0.0.1:5432/postgres] [--replicas 2]

The hub runs with the ledger off and on, alternately, ``--rounds`` times each. With
``--store`` (a server: the bench makes a database of its own there and drops it after), each
round also runs the hub with its state and ledger in PostgreSQL, and with ``--replicas N``,
N replicas of it on that store behind HAProxy (``deploy/haproxy.cfg``), the load sent to the
balancer: their total and the total per core of this machine (load generator, balancer and
PostgreSQL on the same cores).
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
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from _common import (  # type: ignore[import-not-found]
    ROOT,
    RawClient,
    build,
    free_port,
    pct_ms,
    post,
    scratch_store,
    serve,
)

from zhongshu.demo.city import ServerSettings
from zhongshu.demo.tokens import read_token

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
    print(f"  {label:<32} {qps:9.0f} q/s   p50 {pct_ms(lat, 50):7.2f} ms   "
          f"p99 {pct_ms(lat, 99):7.2f} ms   errors {errors}", flush=True)
    return qps


def _tree_pss_mib(pid: int) -> float:
    """Proportional set size of a process and its descendants (MiB): shared pages counted
    once across them."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


@contextmanager
def _replicas(city: Path, store: str, n: int) -> Iterator[tuple[str, str]]:
    """``n`` replicas (``zhongshu serve``) of the city on ``store`` behind HAProxy with the
    shipped configuration; yield (balancer URL, cockpit-city token). The tokens are those
    the hub on this store issued last (run after :func:`serve` on the same store)."""
    import shutil

    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    env = {**os.environ, "ZHONGSHU_STORE_URL": store}
    ports = [free_port() for _ in range(n)]
    procs = [subprocess.Popen([sys.executable, "-m", "zhongshu.cli", "serve", "--dir",
                               str(city), "--port", str(p), "--no-watch"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True) for p in ports]
    lb_port = free_port()
    lb_env = {**os.environ, "ZHONGSHU_LB_HTTP": f"127.0.0.1:{lb_port}",
              "ZHONGSHU_LB_WIRE": f"127.0.0.1:{free_port()}",
              **{f"ZHONGSHU_REPLICA_{i + 1}": f"127.0.0.1:{p}" for i, p in enumerate(ports)},
              **{f"ZHONGSHU_REPLICA_{i + 1}": f"127.0.0.1:{free_port()}"
                 for i in range(n, 3)}}  # the file's other servers: ports nobody serves
    lb = None
    try:
        deadline = time.monotonic() + 120
        for p in ports:
            while True:
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", p)) == 0:
                        break
                if time.monotonic() > deadline or any(x.poll() is not None for x in procs):
                    raise RuntimeError("a replica did not start")
                time.sleep(0.1)
        lb = subprocess.Popen([haproxy, "-db", "-f", str(ROOT / "deploy" / "haproxy.cfg")],
                              env=lb_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(3)  # the replicas marked up (rise 2, checked every second)
        yield f"http://127.0.0.1:{lb_port}", read_token(city, "cockpit-city")
        print("  memory per replica (PSS of the hub, its sequencer and DuckDB workers): "
              + ", ".join(f"{_tree_pss_mib(x.pid):.0f} MiB" for x in procs), flush=True)
    finally:
        if lb is not None:
            lb.terminate()
            lb.wait(10)
        for x in procs:
            os.killpg(x.pid, signal.SIGTERM)
        for x in procs:
            x.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--scale", type=float, default=0.3)
    ap.add_argument("--rounds", type=int, default=2, help="runs with the ledger off and on")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/zhongshu-bench"))
    ap.add_argument("--store", help="also run the hub on a PostgreSQL store: a server URL "
                    "(a database of the bench's own is made there and dropped after)")
    ap.add_argument("--replicas", type=int, default=0,
                    help="with --store: also N replicas behind HAProxy (1-3)")
    args = ap.parse_args()
    if args.replicas and not args.store:
        ap.error("--replicas needs --store")
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

    with ExitStack() as stack:
        store = stack.enter_context(scratch_store(args.store)) if args.store else None
        modes = ["off", "on"] + (["postgresql"] if store else []) + \
            ([f"{args.replicas} replicas"] if args.replicas else [])
        rates: dict[str, list[float]] = {m: [] for m in modes}
        for _round in range(args.rounds):  # alternate, so drift in the machine hits all alike
            for mode in modes:
                if mode.endswith("replicas"):
                    assert store is not None
                    hub = _replicas(city, store, args.replicas)
                    label = f"{mode}, ledger on, PG"
                else:
                    env = {"ZHONGSHU_LEDGER_ENABLED": "false"} if mode == "off" else {}
                    if mode == "postgresql":
                        assert store is not None
                        env = {"ZHONGSHU_STORE_URL": store}
                    hub = serve(city, env)
                    label = ("hub, ledger on, PG store" if mode == "postgresql"
                             else f"hub point lookups, ledger {mode}")
                with hub as (url, token):
                    asyncio.run(_load(url, token, 2, args.connections, n_keys))  # warm-up
                    n, e, lat = asyncio.run(_load(url, token, args.seconds, args.connections,
                                                  n_keys))
                    rates[mode].append(_report(label, n, e, lat, args.seconds))
    med = {m: statistics.median(r) for m, r in rates.items()}
    off, on = med["off"], med["on"]
    print(f"\n  hub (ledger on) / bare FastAPI: {on / base:.2f}   (target: >= 2,000 q/s on 2 "
          "cores, load generator included)")
    print(f"  ledger on / off: {on / off:.2f}   (median {on:,.0f} vs {off:,.0f} q/s; every "
          "answer recorded and durable before it is sent; target within 15%)")
    if "postgresql" in med:
        print(f"  PostgreSQL store / embedded, ledger on: {med['postgresql'] / on:.2f}   "
              f"(median {med['postgresql']:,.0f} vs {on:,.0f} q/s)")
    if args.replicas:
        total = med[f"{args.replicas} replicas"]
        cores = os.cpu_count() or 1
        print(f"  {args.replicas} replicas behind HAProxy: {total:,.0f} q/s in all, "
              f"{total / cores:,.0f} q/s per core ({cores} cores shared with the load "
              f"generator, HAProxy and PostgreSQL); / one replica on PG: "
              f"{total / med['postgresql']:.2f}")

if __name__ == "__main__":
    main()
