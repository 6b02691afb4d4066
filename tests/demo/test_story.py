"""The demo models what its scenarios claim, whatever the seed and scale: paying once saves
the time of the payment queues at every hospital. Checked on the generated rows by plain
arithmetic here (the scenario's own report is checked against the owner's table in
tests/scenarios/test_medical.py)."""

from __future__ import annotations

from statistics import mean

import pytest

from zhongshu.demo.generate import DemoCity


@pytest.mark.parametrize(("seed", "scale"), [(1, 0.01), (2, 0.01), (3, 0.01), (7, 0.01),
                                             (42, 0.01), (42, 0.05)])
def test_paying_once_saves_time_at_every_hospital(seed: int, scale: float) -> None:
    city = DemoCity(seed, scale)
    visits = next(t for t in city.tables["health"] if t.name == "visits")
    col = {name: i for i, (name, _type) in enumerate(visits.columns)}
    minutes: dict[tuple[str, bool], list[float]] = {}
    for r in visits.rows:
        if r[col["left_at"]] is None:  # still in hospital at midnight
            continue
        stay = (r[col["left_at"]] - r[col["arrived_at"]]).total_seconds() / 60
        minutes.setdefault((r[col["hospital_id"]], r[col["paid_once"]]), []).append(stay)
    hospitals = {h for h, _ in minutes}
    assert len(hospitals) == 12
    for h in sorted(hospitals):
        saved = mean(minutes[h, False]) - mean(minutes[h, True])
        # the payment queues skipped: 1–3 of them, 8–16 minutes each
        assert 8 < saved < 40, (h, saved)
