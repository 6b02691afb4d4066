"""Expected free spaces at arrival.

Method (a seasonal profile with a fading anomaly): a garage's *usual* free spaces at a
weekday and hour is the mean of its counts at that weekday and hour over the history its
operator keeps. The forecast for a time ``h`` hours after the latest count is the usual
value then, plus today's departure from the usual now, halved every ``HALF_LIFE_H`` hours:

    free(t0 + h) = usual(t0 + h) + (free(t0) − usual(t0)) · 0.5^(h / HALF_LIFE_H)

kept within 0…capacity. An operator that keeps no history gets its latest count
("same as now", the naive baseline). ``bench/parking_forecast.py`` measures both on held-out
demo days.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

HALF_LIFE_H = 1.0
Usual = dict[tuple[int, int], float]  # (ISO weekday 1–7, hour) → mean free spaces


def usual_from(rows: list[tuple[datetime, float]]) -> Usual:
    """The mean count per (ISO weekday, hour) of a garage's counts."""
    sums: dict[tuple[int, int], list[float]] = {}
    for t, free in rows:
        sums.setdefault((t.isoweekday(), t.hour), []).append(free)
    return {k: sum(v) / len(v) for k, v in sums.items()}


def expected_free(now_free: float, now: datetime, then: datetime, capacity: int,
                  usual: Usual | None) -> float:
    """The forecast above (the latest count when there is no history for the hours)."""
    if not usual:
        return float(now_free)
    u_now = usual.get((now.isoweekday(), now.hour))
    u_then = usual.get((then.isoweekday(), then.hour))
    if u_now is None or u_then is None:
        return float(now_free)
    h = max(0.0, (then - now).total_seconds() / 3600)
    fading: float = 0.5 ** (h / HALF_LIFE_H)  # a positive base: never complex
    value = u_then + (now_free - u_now) * fading
    return max(0.0, min(float(capacity), value))


def usual_sql(dataset: str, key: str, value: str, time: str) -> str:
    """The governed query of every garage's mean count per ISO weekday and hour."""
    return (f"SELECT {key} AS k, isodow({time}) AS dow, hour({time}) AS hour, "
            f"avg({value}) AS free FROM {dataset} GROUP BY ALL")


def usual_by_garage(rows: list[dict[str, Any]]) -> dict[str, Usual]:
    """:func:`usual_sql`'s rows → garage → usual free spaces."""
    out: dict[str, Usual] = {}
    for r in rows:
        out.setdefault(str(r["k"]), {})[(int(r["dow"]), int(r["hour"]))] = float(r["free"])
    return out
