"""What the hub adds to a query: the same queries through the hub's HTTP API and directly.

For each engine the traffic police may run (SQLite, PostgreSQL, MariaDB) the demo city is built
with its traffic data there. Each query runs on each path in turn:

* **direct/native** — the source's own driver on the raw tables (sqlite3, psycopg, PyMySQL);
* **direct/duckdb** — plain DuckDB with the same source attached;
* **hub** — `POST /v1/query` (JSON) to a hub on loopback, as `cockpit-city`, over a plain
  keep-alive socket (so the figure is the hub's, not an HTTP client library's).

"direct" is the better of the two; the ratio is hub / direct and "added" is the difference of
medians. Point lookups use a different key every time (no answer can be cached).

    python bench/query_overhead.py [--scale 0.3] [--runs 25] [--engines sqlite,postgres,mysql]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
from _common import SyncRawClient, build, median_ms, serve  # type: ignore[import-not-found]

from zhongshu.demo.city import ServerSettings
from zhongshu.sources import _extensions

QUERIES: dict[str, tuple[str, int]] = {  # name → (SQL over {p} {c} {s}, repetitions factor)
    "point lookup": ("SELECT * FROM {p} WHERE passage_id = {k}", 20),
    "filtered scan": ("SELECT passage_id, passed_at, speed_kmh FROM {p} "
                      "WHERE camera_id = 'cam-{cam:03d}a'", 8),
    "aggregate": ("SELECT vehicle_type, count(*) AS n, avg(speed_kmh) AS v, "
                  "max(passed_at) AS last FROM {p} GROUP BY vehicle_type", 1),
    "three-way join": ("SELECT c.district, count(*) AS n, avg(s.length_m) AS len "
                       "FROM {p} p JOIN {c} c ON p.camera_id = c.camera_id "
                       "JOIN {s} s ON s.segment_id = c.segment_id GROUP BY c.district", 1),
}
HUB_NAMES = {"p": "traffic.passages", "c": "traffic.checkpoints", "s": "traffic.segments"}


def _native(engine: str, city: Path, servers: ServerSettings) -> tuple[Callable[[str], Any],
                                                                      dict[str, str]]:
    if engine == "sqlite":
        con = sqlite3.connect(f"file:{city / 'data' / 'traffic-police.sqlite'}?mode=ro",
                              uri=True, check_same_thread=False)
        return (lambda q: con.execute(q).fetchall()), {"p": "passages", "c": "checkpoints",
                                                         "s": "segments"}
    db = servers.database("traffic-police")
    if engine == "postgres":
        import psycopg

        pg = psycopg.connect(**servers.pg, dbname=db, autocommit=True)
        return (lambda q: pg.execute(q).fetchall()), {"p": "passages", "c": "checkpoints",
                                                        "s": "segments"}
    import pymysql

    my = pymysql.connect(**servers.mysql, database=db, autocommit=True)

    def run(q: str) -> Any:
        with my.cursor() as cur:
            cur.execute(q)
            return cur.fetchall()

    return run, {"p": "passages", "c": "checkpoints", "s": "segments"}


def _duckdb(engine: str, city: Path, servers: ServerSettings) -> tuple[Callable[[str], Any],
                                                                      dict[str, str]]:
    con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    db = servers.database("traffic-police")
    if engine == "sqlite":
        _extensions.load(con, "sqlite_scanner")
        con.execute(f"ATTACH '{city / 'data' / 'traffic-police.sqlite'}' AS t "
                    "(TYPE sqlite, READ_ONLY)")
        schema = "t.main"
    elif engine == "postgres":
        _extensions.load(con, "postgres_scanner")
        pg = servers.pg
        con.execute(f"ATTACH 'host={pg['host']} port={pg['port']} user={pg['user']} "
                    f"dbname={db}' AS t (TYPE postgres, READ_ONLY)")
        schema = "t.public"
    else:
        _extensions.load(con, "mysql_scanner")
        my = servers.mysql
        con.execute(f"ATTACH 'host={my['host']} port={my['port']} user={my['user']} "
                    f"database={db}' AS t (TYPE mysql, READ_ONLY)")
        schema = f"t.{db}"
    return (lambda q: con.execute(q).fetchall()), {"p": f"{schema}.passages",
                                                    "c": f"{schema}.checkpoints",
                                                    "s": f"{schema}.segments"}


def _timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_engine(engine: str, city: Path, servers: ServerSettings, runs: int,
                 n_passages: int) -> list[tuple[str, str, float, float, str, float]]:
    native, nnames = _native(engine, city, servers)
    duck, dnames = _duckdb(engine, city, servers)
    rows = []
    with serve(city) as (url, token):
        http = SyncRawClient(url, token)

        def hub(q: str) -> Any:
            status, body = http.post_json("/v1/query", {"sql": q, "purpose": "city-operations"})
            if status != 200:
                raise SystemExit(f"hub refused {q!r}: {body[:500]!r}")
            return body

        rnd = random.Random(1)
        for name, (template, factor) in QUERIES.items():
            n = runs * factor
            keys = [{"k": rnd.randint(1, n_passages), "cam": rnd.randint(0, 343)}
                     for _ in range(n + 2)]
            times: dict[str, list[float]] = {}
            # one phase per path: DuckDB's worker threads must not steal the hub's CPU
            for label, fn, names in (("native", native, nnames), ("duckdb", duck, dnames),
                                     ("hub", hub, HUB_NAMES)):
                qs = [template.format(**names, **args) for args in keys]
                for q in qs[:2]:  # warm-up
                    fn(q)
                times[label] = [_timed(lambda q=q, fn=fn: fn(q)) for q in qs[2:]]
            nat, dk, hb = (median_ms(times[k]) for k in ("native", "duckdb", "hub"))
            best, which = (nat, "native") if nat <= dk else (dk, "duckdb")
            rows.append((engine, name, nat, dk, which, hb))
            print(f"  {engine:<9} {name:<15} native {nat:9.3f}  duckdb {dk:9.3f}  hub {hb:9.3f}"
                  f"  ratio {hb / best:6.2f}  added {hb - best:+8.3f} ms", flush=True)
    return rows


GOVERNED = [  # (label, member, purpose): the owner reads its data without governance
    ("owner (none)", "traffic-police", "enforcement"),
    ("row scope", "cockpit-xihu", "district-operations"),
    ("pseudonym mask", "app-traffic", "traffic-management"),
]


def bench_governance(engine: str, city: Path, runs: int, n_passages: int
                     ) -> list[tuple[str, str, str, float]]:
    """The same queries through the hub as the owner, as a row-scoped cockpit, and as an app
    that sees plates as pseudonyms."""
    from zhongshu.demo.tokens import read_token

    rows = []
    with serve(city) as (url, _token):
        rnd = random.Random(2)
        for name, (template, factor) in QUERIES.items():
            n = runs * factor
            keys = [{"k": rnd.randint(1, n_passages), "cam": rnd.randint(0, 343)}
                    for _ in range(n + 2)]
            for label, member, purpose in GOVERNED:
                http = SyncRawClient(url, read_token(city, member))
                sql = template.replace("FROM {p}", "FROM {p} ").replace(
                    "SELECT * FROM", "SELECT passage_id, camera_id, plate, passed_at FROM"
                    if member == "app-traffic" else "SELECT * FROM")
                qs = [sql.format(**HUB_NAMES, **args) for args in keys]
                if member == "cockpit-xihu":
                    qs = [q.replace("plate, ", "") for q in qs]
                for q in qs[:2]:
                    http.post_json("/v1/query", {"sql": q, "purpose": purpose})
                times = []
                for q in qs[2:]:
                    t = time.perf_counter()
                    status, body = http.post_json("/v1/query", {"sql": q, "purpose": purpose})
                    times.append(time.perf_counter() - t)
                    if status != 200:
                        raise SystemExit(f"{member} refused {q!r}: {body[:300]!r}")
                http.close()
                rows.append((engine, name, label, median_ms(times)))
                print(f"  {engine:<9} {name:<15} {label:<15} hub {median_ms(times):9.3f} ms",
                      flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=0.3)
    ap.add_argument("--runs", type=int, default=25)
    ap.add_argument("--engines", default="sqlite,postgres,mysql")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/zhongshu-bench"))
    ap.add_argument("--governance", action="store_true",
                    help="also compare the owner, a row-scoped and a masked caller")
    args = ap.parse_args()
    servers = ServerSettings.from_env(prefix="zs_bench_")
    print(f"query overhead — scale {args.scale}, {args.runs} runs (× factor), medians in ms",
          flush=True)
    results = []
    for engine in args.engines.split(","):
        city = build(args.workdir, f"city-{engine}", args.scale, engine, servers)
        results += bench_engine(engine, city, servers, args.runs, _count(engine, city, servers))
    print("\nsummary (direct = the better of native driver and DuckDB):")
    print(f"  {'engine':<9} {'query':<15} {'direct':>9} {'via':<7} {'hub':>9} {'ratio':>6} "
          f"{'added':>8}")
    for engine, name, nat, dk, which, hb in results:
        best = min(nat, dk)
        print(f"  {engine:<9} {name:<15} {best:9.3f} {which:<7} {hb:9.3f} {hb / best:6.2f} "
              f"{hb - best:+8.3f}")
    print("\ntargets: ratio <= 1.10 where direct >= 100 ms; <= 2 ms added for point lookups")
    sys.stdout.flush()
    if not args.governance:
        return
    print("\ngovernance — the same queries through the hub, by caller (medians in ms):")
    gov = []
    for engine in args.engines.split(","):
        city = build(args.workdir, f"city-{engine}", args.scale, engine, servers)
        gov += bench_governance(engine, city, args.runs, _count(engine, city, servers))
    base = {(e, q): t for e, q, label, t in gov if label.startswith("owner")}
    print(f"\n  {'engine':<9} {'query':<15} {'caller':<15} {'hub':>9} {'vs owner':>9}")
    for e, q, label, t in gov:
        print(f"  {e:<9} {q:<15} {label:<15} {t:9.3f} {t / base[(e, q)]:9.2f}")


def _count(engine: str, city: Path, servers: ServerSettings) -> int:
    native, names = _native(engine, city, servers)
    return int(native(f"SELECT max(passage_id) FROM {names['p']}")[0][0])


if __name__ == "__main__":
    main()
