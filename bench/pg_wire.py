"""The wire endpoint against the HTTP protocol: the same queries, the same caller, one hub.

One `zhongshu demo --pg-port N` process answers both faces. For each query the median time
to the last byte of the answer (a ledger entry each, on both faces):

* **wire (psycopg)** — one psycopg 3 connection (text results, server-side parameters when
  the query has one), as a BI tool or pandas would use it;
* **wire (asyncpg)** — one asyncpg connection (prepared statements, binary results);
* **http json** / **http arrow** — `POST /v1/query` over one keep-alive socket (the bytes
  received, not decoded); **http json+parse** also decodes the JSON (``json.loads``), as a
  Python client does — the wire clients' figures include decoding every value.

Queries: a point lookup (a different key every run: nothing is cached), and 10,000 rows
(the hub's row cap) of traffic.passages.

    python bench/pg_wire.py [--scale 0.1] [--runs 30]

Target: the wire endpoint no slower than the HTTP JSON path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from _common import SyncRawClient, build, free_port, median_ms, serve  # type: ignore[import-not-found]

from zhongshu.demo.city import ServerSettings

POINT = "SELECT * FROM traffic.passages WHERE passage_id = {k}"
POINT_P = "SELECT * FROM traffic.passages WHERE passage_id = $1"
BULK = ("SELECT passage_id, camera_id, vehicle_type, passed_at, speed_kmh "
        "FROM traffic.passages ORDER BY passage_id LIMIT 10000")
PURPOSE = "city-operations"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/zhongshu-bench"))
    args = ap.parse_args()
    import asyncpg
    import psycopg

    servers = ServerSettings.from_env(prefix="zs_bench_")
    city = build(args.workdir, "city-sqlite", args.scale, "sqlite", servers)
    pg_port = free_port()
    with serve(city, None, "--pg-port", str(pg_port)) as (url, token):
        http = SyncRawClient(url, token)
        status, body = http.post_json("/v1/query", {
            "sql": "SELECT max(passage_id) AS n FROM traffic.passages", "purpose": PURPOSE})
        assert status == 200, body
        top = int(json.loads(body)["rows"][0][0])
        keys = [random.Random(7).randint(1, top) for _ in range(args.runs * 4)]
        conn = psycopg.connect(host="127.0.0.1", port=pg_port, user="cockpit-city",
                               password=token, dbname=PURPOSE, autocommit=True)
        loop = asyncio.new_event_loop()
        apg = loop.run_until_complete(asyncpg.connect(
            host="127.0.0.1", port=pg_port, user="cockpit-city", password=token,
            database=PURPOSE, ssl=False))
        n_bulk = len(conn.execute(BULK).fetchall())

        def http_q(sql: str, fmt: str, parse: bool = False) -> None:
            s, b = http.post_json("/v1/query", {"sql": sql, "purpose": PURPOSE, "format": fmt})
            assert s == 200, b[:200]
            if parse:  # what a Python client does with it (httpx's .json() is json.loads)
                json.loads(b)

        cases: dict[str, dict[str, Any]] = {
            "point lookup": {
                "wire (psycopg)": lambda i: conn.execute(
                    "SELECT * FROM traffic.passages WHERE passage_id = %s",
                    (keys[i],)).fetchall(),
                "wire (asyncpg)": lambda i: loop.run_until_complete(
                    apg.fetch(POINT_P, keys[args.runs + i])),
                "http json": lambda i: http_q(POINT.format(k=keys[2 * args.runs + i]), "json"),
                "http arrow": lambda i: http_q(POINT.format(k=keys[3 * args.runs + i]),
                                               "arrow"),
            },
            f"{n_bulk:,} rows": {
                "wire (psycopg)": lambda i: conn.execute(BULK).fetchall(),
                "wire (asyncpg)": lambda i: loop.run_until_complete(apg.fetch(BULK)),
                "http json": lambda i: http_q(BULK, "json"),
                "http json+parse": lambda i: http_q(BULK, "json", True),
                "http arrow": lambda i: http_q(BULK, "arrow"),
            },
        }
        print(f"wire endpoint vs HTTP — scale {args.scale}, {args.runs} runs, medians in ms")
        results: dict[tuple[str, str], float] = {}
        for query, paths in cases.items():
            runs = args.runs if "point" in query else max(args.runs // 2, 5)
            samples: dict[str, list[float]] = {path: [] for path in paths}
            for fn in paths.values():
                fn(0)  # warm: the plan and the types are learnt once per shape
            for i in range(runs):  # interleaved: the machine's load falls on every path
                for path, fn in paths.items():
                    t0 = time.perf_counter()
                    fn(i)
                    samples[path].append(time.perf_counter() - t0)
            for path in paths:
                results[(query, path)] = median_ms(samples[path])
                print(f"  {query:<14} {path:<15} {results[(query, path)]:9.3f}", flush=True)
        print("\nsummary (wire / http json):")
        for query in cases:
            base = results[(query, "http json")]
            for path in ("wire (psycopg)", "wire (asyncpg)", "http json+parse", "http arrow"):
                if (query, path) in results:
                    print(f"  {query:<14} {path:<15} {results[(query, path)] / base:6.2f}")
        loop.run_until_complete(apg.close())
        loop.close()
        conn.close()
        http.close()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
