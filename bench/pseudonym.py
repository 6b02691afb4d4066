"""Keyed pseudonyms: the HMAC-SHA256 the hub registers, per engine, against a baseline.

DuckDB 1.5.5 has no HMAC. The hub registers ``zs_pseudonym`` as a vectorised Arrow UDF in its
DuckDB workers, and as a deterministic SQLite function for pushdown. Baseline, in the same
process: DuckDB's built-in (unkeyed) ``sha256()`` over the same strings — what a native HMAC
would cost at best.

    python bench/pseudonym.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import secrets
import sqlite3
import statistics
import sys
import time
from pathlib import Path

import duckdb
from duckdb.sqltypes import VARCHAR

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from zhongshu.policy.masking import PseudonymKeys


def _median(fn, runs: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    keys = PseudonymKeys(secrets.token_bytes(32))
    kid = "app-parking|convenient-parking|fixed"
    con = duckdb.connect()
    con.create_function("zs_pseudonym", keys.udf, [VARCHAR, VARCHAR], VARCHAR, type="arrow",
                        side_effects=False)
    con.execute(f"CREATE TABLE plates AS SELECT '浙A' || lpad(CAST(i AS VARCHAR), 5, '0') AS p "
                f"FROM range({args.rows}) t(i)")
    n = args.rows
    base = _median(lambda: con.execute("SELECT count(DISTINCT sha256(p)) FROM plates")
                   .fetchall())
    udf = _median(lambda: con.execute(f"SELECT count(DISTINCT zs_pseudonym('{kid}', p)) "
                                      "FROM plates").fetchall())
    lite = sqlite3.connect(":memory:")
    lite.create_function("zs_pseudonym", 2, keys.pseudonym, deterministic=True)
    lite.execute("CREATE TABLE plates (p TEXT)")
    lite.executemany("INSERT INTO plates VALUES (?)", con.execute("SELECT p FROM plates")
                     .fetchall())
    sq = _median(lambda: lite.execute(f"SELECT count(DISTINCT zs_pseudonym('{kid}', p)) "
                                      "FROM plates").fetchall(), runs=3)
    one = _median(lambda: keys.pseudonym(kid, "浙A12345"), runs=2000)
    print(f"keyed pseudonyms over {n:,} plates (medians):")
    print(f"  DuckDB sha256() built-in (baseline) {base * 1000:9.1f} ms  "
          f"{n / base / 1e6:6.2f} M rows/s")
    print(f"  DuckDB zs_pseudonym Arrow UDF       {udf * 1000:9.1f} ms  "
          f"{n / udf / 1e6:6.2f} M rows/s   {udf / base:5.1f}x baseline")
    print(f"  SQLite zs_pseudonym function        {sq * 1000:9.1f} ms  "
          f"{n / sq / 1e6:6.2f} M rows/s   {sq / base:5.1f}x baseline")
    print(f"  one equality lookup (Python)        {one * 1e6:9.2f} us")


if __name__ == "__main__":
    main()
