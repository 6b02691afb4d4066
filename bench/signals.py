"""Every signal controller on every development scenario, over 3 seeds: average delay and the
other metrics, and each controller's ratio to max-pressure (the standard baseline, run in
the same process on the same networks and demand) and to fixed time; then emergency
priority for an ambulance crossing the arterial, with each controller.

    python bench/signals.py [--seeds 1 2 3] [--workdir /tmp/zhongshu-bench/signals]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import _common  # noqa: F401  (puts the project on the path)

from zhongshu.traffic.signals.controllers import CONTROLLERS
from zhongshu.traffic.signals.scenarios import NETWORKS, build, demo_city, with_emergency
from zhongshu.traffic.signals.sim import run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/zhongshu-bench/signals"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    mean: dict[tuple[str, str], dict[str, float]] = {}
    print(f"signals — {len(NETWORKS) + 1} scenarios × {len(CONTROLLERS)} controllers × seeds "
          f"{args.seeds}, one simulated hour each (rush hour in the middle)")
    print(f"  {'scenario':<10}{'controller':<14}{'avg delay s':>12}{'± sd':>7}"
          f"{'duration s':>11}{'finished':>9}{'on road':>8}{'never in':>9}{'waiting s':>10}"
          f"{'delay idx':>10}")
    names = [*NETWORKS, "demo-city"]
    for name in names:
        if name == "demo-city":  # the demo city's own grid, its morning peak from passages
            net, routes, begin, end = demo_city(args.workdir / "demo", begin_h=7.5, end_h=8.5)
        else:
            (net, routes), begin, end = build(name, args.workdir), 0.0, 3600.0
        for ctl in CONTROLLERS:
            runs = [run(net, routes, CONTROLLERS[ctl](), s, begin=begin, end=end)
                    for s in args.seeds]
            m = {k: statistics.fmean(r[k] for r in runs) for k in runs[0]}
            sd = statistics.stdev(r["avg_delay"] for r in runs) if len(runs) > 1 else 0.0
            mean[(name, ctl)] = m
            print(f"  {name:<10}{ctl:<14}{m['avg_delay']:>12.1f}{sd:>7.1f}"
                  f"{m['avg_duration']:>11.1f}{m['finished']:>9.0f}{m['unfinished']:>8.0f}"
                  f"{m['never_entered']:>9.0f}{m['avg_waiting']:>10.1f}{m['delay_index']:>10.2f}",
                  flush=True)
    print("  ratios of average delay (per scenario; over the set = sum of delays / sum)")
    for ctl in CONTROLLERS:
        to_mp = [mean[(n, ctl)]["avg_delay"] / mean[(n, "max-pressure")]["avg_delay"]
                 for n in names]
        to_fx = [mean[(n, ctl)]["avg_delay"] / mean[(n, "fixed")]["avg_delay"]
                 for n in names]
        total = sum(mean[(n, ctl)]["avg_delay"] for n in names)
        print(f"    {ctl:<14} to max-pressure {' '.join(f'{r:.2f}' for r in to_mp)}  "
              f"(set {total / sum(mean[(n, 'max-pressure')]['avg_delay'] for n in names):.2f})"
              f"   to fixed {' '.join(f'{r:.2f}' for r in to_fx)}  "
              f"(set {total / sum(mean[(n, 'fixed')]['avg_delay'] for n in names):.2f})")
    print("  emergency priority on the arterial (an ambulance crossing it in the rush hour; "
          "travel time / its free-flow time, everyone's average delay), seed 1:")
    net, routes = build("arterial", args.workdir)
    amb = with_emergency(net, routes, depart=1500)
    for ctl in CONTROLLERS:
        off, on = (run(net, amb, CONTROLLERS[ctl](), 1, emergency="ambulance", priority=p)
                   for p in (False, True))
        print(f"    {ctl:<14} without {off['emergency']['ratio']:.2f} "
              f"(delay {off['avg_delay']:.1f} s)   with {on['emergency']['ratio']:.2f} "
              f"(delay {on['avg_delay']:.1f} s)")
    print(f"  target: ours ≤ 0.90 × max-pressure over the set, never worse than fixed "
          f"({time.perf_counter() - t0:.0f} s in all)")


if __name__ == "__main__":
    sys.exit(main())
