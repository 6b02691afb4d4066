"""How soon a serving hub applies a change to its configuration, against a restart.

A hub serves the demo city; each round adds a dataset to a member file on disk and times
until it answers a query (``zhongshu.reload``: watch, load, check, fresh workers, swap). The
baseline, in the same run, is what an operator did before: stop the hub and start it again,
timed until the same new dataset answers.

    python bench/reload.py [--rounds 5] [--scale 0.05]

Target: a change applied within 3 s.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import httpx
from _common import build, serve  # type: ignore[import-not-found]

from zhongshu.demo.city import ServerSettings
from zhongshu.demo.tokens import read_token

DATASET = '''
[[datasets]]
name = "traffic.reload_probe_{n}"
title = "A dataset added while the hub serves"
source = "traffic-police-db"
table = "checkpoints"
listed = false

[[datasets.columns]]
name = "camera_id"
type = "VARCHAR"
classification = "public"
'''


def answers(url: str, token: str, n: int) -> bool:
    r = httpx.post(f"{url}/v1/query", headers={"Authorization": f"Bearer {token}"},
                   json={"sql": f"SELECT count(*) FROM traffic.reload_probe_{n}",
                         "purpose": "city-operations"}, timeout=30)
    return r.status_code == 200


def wait(url: str, token: str, n: int, limit_s: float = 120) -> float:
    t0 = time.monotonic()
    while not answers(url, token, n):
        if time.monotonic() - t0 > limit_s:
            raise RuntimeError(f"dataset {n} did not answer within {limit_s} s")
        time.sleep(0.05)
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--scale", type=float, default=0.05)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/zhongshu-bench"))
    args = ap.parse_args()
    city = build(args.workdir, "city-reload", args.scale, "sqlite",
                 ServerSettings.from_env(prefix="zs_bench_"))
    member = city / "members" / "traffic-police.toml"
    original = member.read_text(encoding="utf-8")
    reload_s, restart_s = [], []
    try:
        with serve(city) as (url, _):
            token = read_token(city, "traffic-police")
            for n in range(args.rounds):
                with member.open("a", encoding="utf-8") as f:
                    f.write(DATASET.format(n=n))
                reload_s.append(wait(url, token, n))
        for n in range(args.rounds, args.rounds + max(1, args.rounds // 2)):
            with member.open("a", encoding="utf-8") as f:
                f.write(DATASET.format(n=n))
            t0 = time.monotonic()
            with serve(city, None, "--no-watch") as (url, _):
                wait(url, read_token(city, "traffic-police"), n)
                restart_s.append(time.monotonic() - t0)
    finally:
        member.write_text(original, encoding="utf-8")
    print(f"reload — a dataset added to a member file, until it answers "
          f"(demo city at scale {args.scale})")
    print(f"  applied while serving   median {statistics.median(reload_s):6.2f} s   "
          f"max {max(reload_s):6.2f} s   ({len(reload_s)} changes)")
    print(f"  restart (baseline)      median {statistics.median(restart_s):6.2f} s   "
          f"({len(restart_s)} restarts)")
    print(f"  reload / restart: {statistics.median(reload_s) / statistics.median(restart_s):.2f}"
          "   (target: applied within 3 s)")


if __name__ == "__main__":
    main()
