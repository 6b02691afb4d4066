"""What federation adds: the same queries through the city hub and at the district hub.

A district hub (`hub-xihu`, its grid centre's events in SQLite) and the city hub above it
(the fixtures of ``tests/federation``), both served by uvicorn in this process. Each query
runs on both paths in turn, in one run:

* **district** — `POST /v1/query` to the district hub as its owner (`xihu-grid`, bearer);
* **city** — `POST /v1/query` to the city hub as `cockpit-city`, which governs it, sends it
  (signed, as `hub-city`) to the district, records both receipts and answers.

The point query uses a different key every time; the aggregate is pushed down whole (a
remote dataset) or rolled up (the union `grid.events`, one district). Medians and p95;
"added" is the difference of medians, the ratio city / district. Both hubs and the client
share this process (and its interpreter lock), so the added figure is an upper bound.

    python bench/federation.py [--rows 300000] [--runs 40]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.federation.conftest import (  # noqa: E402
    PURPOSE,
    start_federation,
    stop_federation,
)
from zhongshu.policy.identity import issue_token  # noqa: E402

QUERIES = {
    "point query": ("SELECT event_id, street, category FROM xihu_grid.events "
                    "WHERE event_id = {k}", 1),
    "aggregate": ("SELECT street, category, count(*) AS n, avg(lon) AS lon, max(reported_at) "
                  "AS last FROM xihu_grid.events GROUP BY street, category", 4),
    "roll-up (union)": ("SELECT street, count(*) AS n, avg(lat) AS lat FROM grid.events "
                        "GROUP BY street", 4),
}


def events(n: int) -> list[tuple[object, ...]]:
    rng = random.Random(7)
    streets = [f"xihu-s{i}" for i in range(12)]
    cats = ["litter", "noise", "parking", "roads", "water"]
    return [(i, rng.choice(streets), rng.choice(cats), f"2026-12-01 {i % 24:02d}:00:00",
             120.1 + rng.random() / 10, 30.2 + rng.random() / 10, f"name{i}", f"138{i:08d}")
            for i in range(1, n + 1)]


def timed(client: httpx.Client, url: str, token: str, sql: str) -> float:
    t0 = time.perf_counter()
    r = client.post(url, json={"sql": sql, "purpose": PURPOSE},
                    headers={"Authorization": f"Bearer {token}"})
    took = time.perf_counter() - t0
    if r.status_code != 200:
        raise SystemExit(f"{url}: {r.status_code} {r.text[:300]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--runs", type=int, default=40)
    args = ap.parse_args()
    fed = start_federation(Path(tempfile.mkdtemp(prefix="zs-bench-fed-")),
                           events={"xihu": events(args.rows)})
    try:
        district = fed.districts["xihu"]
        owner = issue_token(district.node.catalog, "xihu-grid")
        consumer = fed.token("cockpit-city")
        city_url, district_url = f"{fed.city.url}/v1/query", f"{district.url}/v1/query"
        rng = random.Random(1)
        print(f"{args.rows:,} events at the district; {args.runs} runs per query and path")
        print(f"{'query':<18}{'district p50':>13}{'p95':>8}{'city p50':>10}{'p95':>8}"
              f"{'added':>9}{'ratio':>7}")
        with httpx.Client(timeout=60) as client:
            for name, (sql, factor) in QUERIES.items():
                runs = max(5, args.runs // factor)
                at: dict[str, list[float]] = {"district": [], "city": []}
                for i in range(runs + 2):  # two warm-ups per path
                    k = rng.randint(1, args.rows)
                    q = sql.format(k=k)
                    # the union is the city's only: at the district, its one part
                    dq = q.replace("FROM grid.events", "FROM xihu_grid.events")
                    d = timed(client, district_url, owner, dq)
                    c = timed(client, city_url, consumer, q)
                    if i >= 2:
                        at["district"].append(d)
                        at["city"].append(c)
                p50 = {k: statistics.median(v) * 1000 for k, v in at.items()}
                p95 = {k: sorted(v)[int(0.95 * (len(v) - 1))] * 1000 for k, v in at.items()}
                print(f"{name:<18}{p50['district']:>11.1f}ms{p95['district']:>6.1f}ms"
                      f"{p50['city']:>8.1f}ms{p95['city']:>6.1f}ms"
                      f"{p50['city'] - p50['district']:>7.1f}ms"
                      f"{p50['city'] / p50['district']:>6.2f}×")
    finally:
        stop_federation(fed)


if __name__ == "__main__":
    main()
