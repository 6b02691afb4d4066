"""How well the parking scenario's forecast predicts free spaces an hour ahead, on held-out
demo days, against the naive "same as now" baseline run on the same cases.

The demo keeps four weeks of Westlake's counts. For each of the last ``--held-out`` days, the
usual free spaces per weekday and hour are learnt from the days before it only; then, for
every garage and every hour from 06:00 to 21:00 of the held-out day, both methods predict
the count one hour later from the count at that hour.

    python bench/parking_forecast.py [--scale 1] [--held-out 7] [--horizon-h 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import datetime, timedelta

import _common  # noqa: F401  (puts the project on the path)

from zhongshu.demo.generate import DemoCity
from zhongshu.scenarios.parking.forecast import expected_free, usual_from


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--held-out", type=int, default=7)
    ap.add_argument("--horizon-h", type=float, default=1.0)
    args = ap.parse_args()
    city = DemoCity(seed=args.seed, scale=args.scale)
    tables = {t.name: t for t in city.tables["parking-westlake"]}
    capacity = {r[0]: r[6] for r in tables["garages"].rows}
    counts: dict[str, dict[datetime, int]] = {}
    for garage, ts, free in tables["occupancy"].rows:
        counts.setdefault(garage, {})[ts] = free
    days = sorted({ts.date() for c in counts.values() for ts in c})
    held = days[-args.held_out:]
    step = timedelta(hours=args.horizon_h)
    err_f: list[float] = []
    err_n: list[float] = []
    for day in held:
        for garage, series in counts.items():
            usual = usual_from([(ts, free) for ts, free in series.items() if ts.date() < day])
            for hour in range(6, 22):
                now = datetime(day.year, day.month, day.day, hour)
                then = now + step
                if now not in series or then not in series:
                    continue
                actual = series[then]
                err_f.append(abs(expected_free(series[now], now, then, capacity[garage], usual)
                                 - actual))
                err_n.append(abs(series[now] - actual))
    mae_f, mae_n = statistics.fmean(err_f), statistics.fmean(err_n)
    print(f"parking forecast — {len(capacity)} garages, {len(held)} held-out days "
          f"({held[0]} … {held[-1]}), {len(err_f):,} predictions {args.horizon_h:g} h ahead")
    print(f"  MAE of free spaces: forecast {mae_f:6.2f}   same-as-now baseline {mae_n:6.2f}   "
          f"ratio {mae_f / mae_n:.2f}")


if __name__ == "__main__":
    sys.exit(main())
