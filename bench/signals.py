"""Every signal controller on every scenario, over 3 seeds: average delay and the other
metrics, and each controller's ratio to max-pressure (the standard baseline, run in the same
process pool on the same networks and demand) and to fixed time; then emergency priority for
an ambulance crossing the arterial, with each controller.

Two sets of scenarios:

* ``dev`` — the development scenarios the controllers were built on: a generated grid,
  arterial and random network, and the demo city's own grid with its morning from passages;
* ``shipped`` — networks SUMO ships with its examples, with their own signal programs: two
  city networks from OpenStreetMap (Berlin-Neukölln, central Ingolstadt) with a generated
  rush-hour demand; the RiLSA intersections (German signal guideline examples: real layouts
  with protected turns, measured flows); DLR's research intersection in Braunschweig with
  its signal plan and an hour of recorded vehicles; an OpenStreetMap extract with its
  demand (A10KW) and the small networks of SUMO's game. Looked at only once ``ours`` was built; what
  changed because of them is said in ``controllers.py``.

* ``real`` (and ``real-large``) — real cities with their own programs and calibrated
  demand, cut from DLR-TS/sumo-scenarios by ``scripts/signals_devset.py`` into
  ``WORKDIR/devset`` (never committed; left out, and said so, when not cut).

Gridlock (over 5 % of the demand never entered or stuck on the road) is flagged per
scenario and controller.

    python bench/signals.py [--set dev|shipped|real|real-large|all] [--seeds 1 2 3]
                            [--jobs 2] [--wave] [--workdir /tmp/zhongshu-bench/signals]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the project on the path)

from zhongshu.demo.sumo import demo_city
from zhongshu.traffic.signals.controllers import CONTROLLERS
from zhongshu.traffic.signals.scenarios import (
    CITIES,
    NETWORKS,
    SHIPPED,
    build,
    shipped,
    with_emergency,
)
from zhongshu.traffic.signals.sim import GRIDLOCK_SHARE, run

# real cities, cut by scripts/signals_devset.py (never committed): in the whole bench the
# 1-, 3- and 7-signal ones; Pasubio (8) and the joined Bologna (13) take 2–4 minutes a run
SETS = {"dev": [*NETWORKS, "demo-city"], "shipped": [*CITIES, *SHIPPED],
        "real": ["acosta-single", "acosta-corridor", "bologna-acosta"],
        "real-large": ["bologna-pasubio", "bologna-joined"]}
DEVSET = [*SETS["real"], *SETS["real-large"]]
Case = tuple[Path, Path, tuple[Path, ...], float, float]


def scenario(name: str, workdir: Path) -> Case:
    """Network, demand, additional files and the window of one scenario (built once)."""
    if name == "demo-city":  # the demo city's own grid, its morning peak from passages
        net, routes, begin, end = demo_city(workdir / "demo", begin_h=7.5, end_h=8.5)
        return net, routes, (), begin, end
    if name in NETWORKS or name in CITIES:
        return (*build(name, workdir), (), 0.0, 3600.0)
    if name in DEVSET:
        d = workdir / "devset" / name
        begin, end = (float(x) for x in (d / "window").read_text().split())
        return d / "net.net.xml", d / "demand.rou.xml", (d / "vtypes.add.xml",
                                                         d / "tls.add.xml"), begin, end
    return shipped(name, workdir / "shipped")


def _one(job: tuple[str, str, int, Path]) -> tuple[str, str, int, dict[str, Any]]:
    name, ctl, seed, workdir = job
    net, routes, adds, begin, end = scenario(name, workdir)
    return name, ctl, seed, run(net, routes, CONTROLLERS[ctl](), seed, begin=begin, end=end,
                                additional=adds)


EMERGENCY = ["arterial", "berlin"]  # an ambulance across each, in its rush hour


def _emergency(job: tuple[str, Path, str, str, bool]) -> tuple[str, str, bool, dict[str, Any]]:
    name, net, demand, ctl, priority = job
    return name, ctl, priority, run(net, demand, CONTROLLERS[ctl](), 1, emergency="ambulance",
                                    priority=priority)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", choices=[*SETS, "all"], default="all",
                    help="all = dev, shipped and real (real where it has been cut)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--jobs", type=int, default=2, help="simulations run at once")
    ap.add_argument("--wave", action="store_true", help="ours-wave (green waves) too")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/zhongshu-bench/signals"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    controllers = [c for c in CONTROLLERS if args.wave or c != "ours-wave"]
    sets = ["dev", "shipped", "real"] if args.set == "all" else [args.set]
    missing = [n for s in sets if s.startswith("real") for n in SETS[s]
               if not (args.workdir / "devset" / n / "window").is_file()]
    if missing:
        print(f"  real cities not cut, left out: {', '.join(missing)} (cut them with "
              f"python scripts/signals_devset.py --repo CLONE_OF_DLR-TS/sumo-scenarios "
              f"--out {args.workdir / 'devset'})")
    chosen = {s: [n for n in SETS[s] if n not in missing] for s in sets}
    sets = [s for s in sets if chosen[s]]
    names = [n for s in sets for n in chosen[s]]
    for name in names:  # build every scenario once, before the pool uses them
        scenario(name, args.workdir)
    # the longest first, so that two at once finish together
    jobs = sorted([(n, c, s, args.workdir) for n in names for c in controllers
                   for s in args.seeds], key=lambda j: j[0] not in DEVSET)
    ambulance = {n: (net, with_emergency(net, routes, depart=1500))
                 for n in EMERGENCY for net, routes in [build(n, args.workdir)]}
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with Pool(args.jobs, maxtasksperchild=1) as pool:  # libsumo: one simulation a process
        for name, ctl, _seed, m in pool.imap_unordered(_one, jobs):
            runs.setdefault((name, ctl), []).append(m)
        emergency = list(pool.imap(_emergency, [(n, *ambulance[n], c, p) for n in EMERGENCY
                                                for c in controllers for p in (False, True)]))
    print(f"signals — {len(names)} scenarios × {len(controllers)} controllers × seeds "
          f"{args.seeds} ({', '.join(sets)})")
    for s in sets:
        _table(s, chosen[s], controllers, runs)
    print("  emergency priority (an ambulance crossing the network in the rush hour; travel "
          "time / its free-flow time, everyone's average delay), seed 1:")
    for k in range(0, len(emergency), 2):
        (name, ctl, _, off), (_, _, _, on) = emergency[k], emergency[k + 1]
        print(f"    {name:<10} {ctl:<14} without {off['emergency']['ratio']:.2f} "
              f"(delay {off['avg_delay']:.1f} s)   with {on['emergency']['ratio']:.2f} "
              f"(delay {on['avg_delay']:.1f} s)")
    print(f"  target: ours ≤ 0.90 × max-pressure over the set, never worse than fixed, no "
          f"gridlock, no starvation ({time.perf_counter() - t0:.0f} s in all, "
          f"{args.jobs} at once)")


def _table(title: str, names: list[str], controllers: list[str],
           runs: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
    print(f"  {title}: mean over the seeds (longest red = the longest a lane with waiting "
          "vehicles stood red, worst seed)")
    print(f"  {'scenario':<16}{'controller':<14}{'avg delay s':>12}{'± sd':>7}"
          f"{'duration s':>11}{'finished':>9}{'on road':>8}{'never in':>9}{'waiting s':>10}"
          f"{'delay idx':>10}{'longest red':>12}{'discarded':>10}{'stuck %':>8}"
          f"{'gridlock':>10}")
    mean: dict[tuple[str, str], dict[str, float]] = {}
    for name in names:
        for ctl in controllers:
            rs = runs[(name, ctl)]
            m = {k: statistics.fmean(r[k] for r in rs) for k in rs[0] if k != "emergency"}
            sd = statistics.stdev(r["avg_delay"] for r in rs) if len(rs) > 1 else 0.0
            red = max(r["longest_red"] for r in rs)
            mean[(name, ctl)] = m
            print(f"  {name:<16}{ctl:<14}{m['avg_delay']:>12.1f}{sd:>7.1f}"
                  f"{m['avg_duration']:>11.1f}{m['finished']:>9.0f}{m['unfinished']:>8.0f}"
                  f"{m['never_entered']:>9.0f}{m['avg_waiting']:>10.1f}"
                  f"{m['delay_index']:>10.2f}{red:>12.0f}{m['discarded']:>10.0f}"
                  f"{100 * m['stuck_share']:>8.1f}{_gridlock(rs):>10}")
    print("  ratios of average delay (per scenario, in the order above; over the set = sum "
          "of delays / sum)")
    for ctl in controllers:
        to_mp = [mean[(n, ctl)]["avg_delay"] / mean[(n, "max-pressure")]["avg_delay"]
                 for n in names]
        to_fx = [mean[(n, ctl)]["avg_delay"] / mean[(n, "fixed")]["avg_delay"]
                 for n in names]
        total = sum(mean[(n, ctl)]["avg_delay"] for n in names)
        print(f"    {ctl:<14} to max-pressure {' '.join(f'{r:.2f}' for r in to_mp)}  "
              f"(set {total / sum(mean[(n, 'max-pressure')]['avg_delay'] for n in names):.2f})"
              f"   to fixed {' '.join(f'{r:.2f}' for r in to_fx)}  "
              f"(set {total / sum(mean[(n, 'fixed')]['avg_delay'] for n in names):.2f})")
    worse = [n for n in names if mean[(n, "ours")]["avg_delay"] > mean[(n, "fixed")]["avg_delay"]]
    print(f"    ours worse than fixed on: {', '.join(worse) or 'none'}")
    d = {k: m["avg_delay"] for k, m in mean.items()}
    lost = [n for n in names if d[(n, "max-pressure")] < d[(n, "fixed")]
            and d[(n, "ours")] >= d[(n, "max-pressure")]]
    print(f"    ours not better than max-pressure where max-pressure beats fixed: "
          f"{', '.join(lost) or 'none'}")
    locked = sorted({f"{n} ({ctl})" for (n, ctl), m in mean.items() if n in names
                     and m["gridlock"] > 0})
    print(f"    GRIDLOCK (over {100 * GRIDLOCK_SHARE:.0f} % of the demand never entered or "
          f"stuck, on any seed): {', '.join(locked) or 'none'}")


def _gridlock(rs: list[dict[str, Any]]) -> str:
    """The gridlock flag over the seeds: how many gridlocked, and the earliest time to it
    (minutes from the start)."""
    locked = [r for r in rs if r["gridlock"]]
    if not locked:
        return "-"
    times = [r["time_to_gridlock"] for r in locked if r["time_to_gridlock"] >= 0]
    at = f"@{min(times) / 60:.0f}m" if times else ""
    return f"{len(locked)}/{len(rs)}{at}"


if __name__ == "__main__":
    sys.exit(main())
