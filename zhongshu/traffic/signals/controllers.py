"""Signal controllers behind one small interface: each decision step a controller looks at
the lanes (through :class:`Junction`) and chooses a green phase of the network's own program
for every traffic light; the harness inserts the yellow between two greens.

* ``fixed`` — the network's own programs, untouched.
* ``webster`` — fixed-time plans recomputed from the flows every ``WEBSTER_PERIOD_S``:
  Webster's cycle C = (1.5 L + 5) / (1 − Y) and greens split by the phases' critical flow
  ratios (see :func:`webster_plan`), in whole decision steps, over the greens no other
  green includes (:func:`cycled`); a lane that several of them serve shares its flow among
  them.
* ``max-pressure`` — the standard baseline, untuned: the green phase whose movements carry
  the largest pressure (vehicles halting on each incoming lane minus those halting on its
  outgoing lane, summed over the phase's movements).
* ``ours`` — pressure with guards and look-ahead: a movement whose outgoing lane is full
  of halted vehicles counts nothing (no green into a spill-back); vehicles still moving
  towards the stop line, within what the lane's speed limit covers in one decision step,
  count half (the queue about to form); a green is kept at least ``MIN_GREEN_S``, and up
  to ``MAX_GREEN_S`` while a queue it serves still discharges (≥ ``DISCHARGING``
  vehicles/s leaving a lane that has halting vehicles) — each switch costs a yellow and a
  start-up, which decides oversaturated junctions; a phase with waiting vehicles red for
  ``MAX_RED_S`` is served next (no phase starves).

  Chosen by measurement (docs/signals.md tells the whole story): on the development
  scenarios the look-ahead is what wins (0.76× max-pressure's delay with it, 1.00×
  without); counting every moving vehicle on the lane lost on the demo city's kilometre
  blocks (1.30×), 150 m fixed it, a step's drive at the speed limit did as well or a little
  better everywhere; a 10 s minimum green cost 17 %, hysteresis 10–20 %. The discharge
  hold, the 60 s maximum red and spill-back only on halted exits came from the networks
  SUMO ships (RiLSA intersections, OpenStreetMap cities), where pure pressure switched
  every step and lost to fixed time on oversaturated junctions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Lanes:
    """What the detectors see on each lane at a decision step."""

    halting: dict[str, int]
    vehicles: dict[str, int]  # within one step's drive of the lane's end (its stop line)
    occupancy: dict[str, float]  # share of the lane's length covered by vehicles, 0–1
    flow: dict[str, float] = field(default_factory=dict)  # vehicles/hour entering, lately
    left: dict[str, int] = field(default_factory=dict)  # vehicles that left since the last look
    span: float = 10.0  # seconds since the last look


@dataclass
class Junction:
    """One traffic light as read from the network: its green phases (state strings) and,
    for each, the movements (incoming lane, outgoing lane) it lets go."""

    id: str
    greens: list[str]
    movements: list[list[tuple[str, str]]]
    current: int = 0
    since: float = 0.0  # when the current green began
    waiting_since: dict[int, float] = field(default_factory=dict)  # phase → red since


class Controller(Protocol):
    """Chooses the green phase of each junction at a decision step (None: keep the
    network's own program running)."""

    name: str

    def choose(self, junction: Junction, lanes: Lanes, now: float) -> int | None:
        ...


class Fixed:
    """The network's own programs."""

    name = "fixed"

    def choose(self, junction: Junction, lanes: Lanes, now: float) -> int | None:
        return None


class MaxPressure:
    """Max-pressure, as published: no tuning, no guards beyond the step and the yellow."""

    name = "max-pressure"

    def choose(self, junction: Junction, lanes: Lanes, now: float) -> int | None:
        h = lanes.halting

        def pressure(k: int) -> int:
            return sum(h.get(i, 0) - h.get(o, 0) for i, o in junction.movements[k])
        return max(range(len(junction.greens)), key=lambda k: (pressure(k), k == junction.current))


def yellow_between(a: str, b: str) -> str:
    """The yellow state leaving ``a`` for green ``b``: links green in ``a`` and not in ``b``
    turn yellow, the others keep their state."""
    return "".join("y" if x in "Gg" and y not in "Gg" else x for x, y in zip(a, b, strict=True))


SATURATION = 1800.0  # vehicles per hour of green per lane
LOST_PER_PHASE_S = 5.0  # yellow plus start-up lost time
WEBSTER_PERIOD_S = 300.0


def webster_plan(flows: list[float], lost_s: float, min_green: float = 5.0,
                 cycle_range: tuple[float, float] = (30.0, 150.0)) -> tuple[float, list[float]]:
    """Webster's cycle and greens from each phase's critical flow (vehicles/hour on its
    busiest lane): y_k = q_k / s, Y = Σ y_k, C = (1.5 L + 5) / (1 − Y) within
    ``cycle_range`` (the longest when Y ≥ 0.95), greens (C − L) · y_k / Y, at least
    ``min_green``."""
    ys = [q / SATURATION for q in flows]
    y = sum(ys)
    lo, hi = cycle_range
    cycle = hi if y >= 0.95 else min(hi, max(lo, (1.5 * lost_s + 5) / (1 - y)))
    effective = cycle - lost_s
    if y <= 0:
        return cycle, [effective / len(flows)] * len(flows)
    return cycle, [max(min_green, effective * yk / y) for yk in ys]


class Webster:
    """Fixed-time plans from measured flows, recomputed every ``WEBSTER_PERIOD_S``."""

    name = "webster"
    needs_flow = True  # the harness then measures each incoming lane's flow

    def __init__(self) -> None:
        # id → (from, the greens cycled through, their green times)
        self.plans: dict[str, tuple[float, list[int], list[float]]] = {}

    def choose(self, junction: Junction, lanes: Lanes, now: float) -> int | None:
        plan = self.plans.get(junction.id)
        if plan is None or now - plan[0] >= WEBSTER_PERIOD_S:
            phases = cycled(junction)
            serving: dict[str, int] = {}  # lane → how many of them serve it
            for k in phases:
                for i in {i for i, _ in junction.movements[k]}:
                    serving[i] = serving.get(i, 0) + 1
            # a lane several greens serve shares its need among them (else a program with
            # overlapping phases counts it twice and asks for the longest cycle)
            flows = [max((lanes.flow.get(i, 0.0) / serving[i]
                          for i, _ in junction.movements[k]), default=0.0) for k in phases]
            _cycle, greens = webster_plan(flows, LOST_PER_PHASE_S * len(flows))
            plan = self.plans[junction.id] = (now, phases, greens)
        start, phases, greens = plan
        t = (now - start) % sum(g + LOST_PER_PHASE_S for g in greens)
        for k, g in zip(phases, greens, strict=True):
            if t < g + LOST_PER_PHASE_S:
                return k
            t -= g + LOST_PER_PHASE_S
        return phases[-1]


def cycled(junction: Junction) -> list[int]:
    """The greens a fixed cycle goes through: those whose movements no other green includes
    (a program's partial greens — a turn released early, a lane held back — are steps
    between these, and each costs a yellow and a start-up in a cycle)."""
    sets = [frozenset(m) for m in junction.movements]
    return [k for k, a in enumerate(sets)
            if not any(a < b or (a == b and m < k) for m, b in enumerate(sets))]


MIN_GREEN_S = 5.0
MAX_RED_S = 60.0
MAX_GREEN_S = 60.0  # longest a green is held for a queue still discharging
DISCHARGING = 0.2  # vehicles/s leaving a queued lane: its queue is still moving out
SPILLBACK = 0.55  # occupancy of an outgoing lane above which nothing more enters (a jammed
#                   lane reads about 0.67: 5 m cars, 2.5 m gaps)
SWITCH_MARGIN = 0.0  # hysteresis, vehicles (1–2 tried: worse on every scenario)
LOOK_AHEAD = 0.5  # weight of a vehicle still moving towards the stop line


def _jammed(lane: str, lanes: Lanes) -> bool:
    """Whether an outgoing lane is full of halted vehicles (spill-back). A short lane full of
    moving vehicles reads a high occupancy too; only halting makes it a jam."""
    return lanes.occupancy.get(lane, 0.0) >= SPILLBACK and lanes.halting.get(lane, 0) > 0


class Ours:
    """Pressure with spill-back awareness, queue look-ahead, a hold for a queue still
    discharging, a minimum green and a maximum red (see the module's docstring)."""

    name = "ours"

    def choose(self, junction: Junction, lanes: Lanes, now: float) -> int | None:
        h, v = lanes.halting, lanes.vehicles
        n = len(junction.greens)
        for k in range(n):  # keep, for each phase, since when it has had waiting vehicles
            waiting = any(h.get(i, 0) > 0 for i, _ in junction.movements[k])
            if k == junction.current or not waiting:
                junction.waiting_since.pop(k, None)
            else:
                junction.waiting_since.setdefault(k, now)

        def pressure(k: int) -> float:
            total = 0.0
            for i, o in junction.movements[k]:
                if _jammed(o, lanes):
                    continue  # the exit is full: a green here moves nobody
                queue = h.get(i, 0) + LOOK_AHEAD * (v.get(i, 0) - h.get(i, 0))
                total += queue - h.get(o, 0)
            return total
        if now - junction.since < MIN_GREEN_S:
            return junction.current
        starving = [k for k, t in junction.waiting_since.items() if now - t >= MAX_RED_S]
        if starving:
            return min(starving, key=lambda k: junction.waiting_since[k])
        best = max(range(n), key=lambda k: pressure(k))
        if best != junction.current and \
                pressure(best) <= pressure(junction.current) + SWITCH_MARGIN:
            return junction.current
        if best != junction.current and now - junction.since < MAX_GREEN_S and \
                self._discharging(junction, lanes):
            return junction.current
        return best

    @staticmethod
    def _discharging(junction: Junction, lanes: Lanes) -> bool:
        """Whether a queue the current green serves is still moving out at a useful rate
        (switching now would waste the yellow and the next start-up on a queue that
        flows)."""
        for i, o in junction.movements[junction.current]:
            if not _jammed(o, lanes) and lanes.halting.get(i, 0) > 0 and \
                    lanes.left.get(i, 0) >= DISCHARGING * lanes.span:
                return True
        return False


CONTROLLERS: dict[str, Any] = {"fixed": Fixed, "webster": Webster, "max-pressure": MaxPressure,
                               "ours": Ours}
