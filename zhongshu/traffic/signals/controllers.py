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
  ``MAX_RED_S`` is served next (no phase starves) unless every exit it needs is full;
  inflow is gated by the exit's free storage (:func:`_room`); and when the network is
  saturated, the network's own plan takes over if it brings more vehicles home
  (:class:`Fallback`).
* ``ours-wave`` — ``ours`` with green waves along corridors (:class:`Corridors`).

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
    arrived: int = 0  # vehicles of the whole network that reached their destination since
    length: dict[str, float] = field(default_factory=dict)  # metres


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
    on_plan: bool = False  # running the network's own program (a controller chose PLAN)


PLAN = -1
"""A controller's choice: run the network's own program at this junction, where it would be
now had it run all along (the harness brings it there through yellow)."""


class Controller(Protocol):
    """Chooses the green phase of each junction at a decision step (None: keep the
    network's own program running; ``PLAN``: go back to it)."""

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
FULL = 0.5  # occupancy of an exit at which nothing more enters it (packed: 0.67, above)
GATE = 0.2  # occupancy of an exit above which inflow into it is gated, down to 0 at FULL
GATE_MIN_M = 50.0  # exits shorter than this are not gated (a few cars swing their occupancy)


def _jammed(lane: str, lanes: Lanes) -> bool:
    """Whether an outgoing lane is full of halted vehicles (spill-back). A short lane full of
    moving vehicles reads a high occupancy too; only halting makes it a jam."""
    return lanes.occupancy.get(lane, 0.0) >= SPILLBACK and lanes.halting.get(lane, 0) > 0


def _room(lane: str, lanes: Lanes) -> float:
    """Inflow gating: the share of a movement's queue that counts, from its exit's free
    storage — all of it up to ``GATE`` occupancy, nothing at ``FULL``, linear between. A
    green into a filling exit moves few and fills it to the junction box; kept below full,
    exits keep room for the vehicles already inside the network (a block that fills from
    outside locks itself: every lane of a loop full, each waiting for the next). Exits
    shorter than ``GATE_MIN_M`` are left to the spill-back rule (central Ingolstadt's
    7–23 m exits, gated, cost one seed 40 → 59 s)."""
    if lanes.halting.get(lane, 0) == 0 or lanes.length.get(lane, GATE_MIN_M) < GATE_MIN_M:
        return 1.0  # moving cars only, or too short to store a queue: spill-back rules
    occ = lanes.occupancy.get(lane, 0.0)
    return min(1.0, max(0.0, (FULL - occ) / (FULL - GATE)))


class Ours:
    """Pressure with spill-back awareness, queue look-ahead, a hold for a queue still
    discharging, a minimum green and a maximum red (see the module's docstring).

    ``coordinate`` (``ours-wave``): green waves on arterials — a vehicle moving towards the
    stop line of the green a junction shows counts ``LOOK_AHEAD_GREEN`` (switching away
    would stop it: a stop, a start-up, a yellow), and so does, at ``PLATOON``, what the
    upstream neighbours' greens release into that green (:class:`Corridors`). Fewer stops
    and a shorter travel time along a dominant flow, paid for by the cross streets."""

    name = "ours"

    def __init__(self, coordinate: bool = False) -> None:
        self.fallback = Fallback()
        self.corridors = Corridors() if coordinate else None

    def choose(self, junction: Junction, lanes: Lanes, now: float) -> int | None:
        if self.corridors is not None:
            self.corridors.see(junction)
        if self.fallback.on_plan(junction, lanes, now):
            return PLAN
        h, v = lanes.halting, lanes.vehicles
        coming = self.corridors.coming(junction, lanes) if self.corridors else {}
        n = len(junction.greens)
        for k in range(n):  # keep, for each phase, since when it has had waiting vehicles
            waiting = any(h.get(i, 0) > 0 for i, _ in junction.movements[k])
            if k == junction.current or not waiting:
                junction.waiting_since.pop(k, None)
            else:
                junction.waiting_since.setdefault(k, now)

        def pressure(k: int) -> float:
            total = 0.0
            wave = self.corridors is not None and k == junction.current
            ahead = LOOK_AHEAD_GREEN if wave else LOOK_AHEAD
            for i, o in junction.movements[k]:
                if _jammed(o, lanes):
                    continue  # the exit is full: a green here moves nobody
                queue = h.get(i, 0) + ahead * (v.get(i, 0) - h.get(i, 0)) \
                    + (coming.get(i, 0.0) if wave else 0.0)
                total += queue * _room(o, lanes) - h.get(o, 0)
            return total
        if now - junction.since < MIN_GREEN_S:
            return junction.current
        # a phase red too long is served next — unless every exit its waiting vehicles
        # need is full (that green would move nobody, and only push the box full)
        starving = [k for k, t in junction.waiting_since.items() if now - t >= MAX_RED_S
                    and any(h.get(i, 0) > 0 and _room(o, lanes) > 0
                            for i, o in junction.movements[k])]
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


LOOK_AHEAD_GREEN = 1.0  # with coordination: a vehicle moving towards a green stop line
PLATOON = 0.25  # with coordination: one an upstream green releases towards a green lane


class Corridors:
    """Neighbours aware of each other along corridors: a junction's incoming lane that is
    the outgoing lane of a neighbour's movement also counts what the neighbour's green is
    releasing into it — the vehicles near its stop line on the lanes of that green's
    movements into this lane (shared among the lanes each of them feeds), at ``PLATOON``
    weight each. Counted for the green a junction shows: its green lasts while the platoon
    its upstream neighbour releases is on its way (a green wave that follows the traffic,
    not a fixed offset)."""

    def __init__(self) -> None:
        self.junctions: dict[str, Junction] = {}
        self.feeders: dict[str, list[tuple[Junction, str]]] | None = None

    def see(self, junction: Junction) -> None:
        """Know ``junction`` (the links between junctions are drawn once all are known)."""
        if junction.id not in self.junctions:
            self.junctions[junction.id] = junction
            self.feeders = None

    def coming(self, junction: Junction, lanes: Lanes) -> dict[str, float]:
        """For each incoming lane of ``junction``: the vehicles upstream greens release
        into it, weighted."""
        if self.feeders is None:
            self.feeders = {}
            for j in self.junctions.values():
                for i, o in dict.fromkeys(mv for m in j.movements for mv in m):
                    self.feeders.setdefault(o, []).append((j, i))
        out: dict[str, float] = {}
        for i in dict.fromkeys(i for m in junction.movements for i, _ in m):
            total = 0.0
            for up, u in self.feeders.get(i, ()):
                if up is junction or up.on_plan:
                    continue
                green = up.movements[up.current]
                exits = {o for a, o in green if a == u}
                if i in exits:
                    total += lanes.vehicles.get(u, 0) / len(exits)
            if total:
                out[i] = PLATOON * total
        return out


TRIAL_S = 300.0  # one window of a comparison between the controller and the plan
SETTLE_S = 60.0  # the start of a window, not measured (queues of the other mode still out)
DISTRESS = 0.05  # share of incoming lanes full of halted vehicles: the network is saturated
MARGIN = 0.05  # the plan must serve this much more to be run
COOLDOWN_S = 900.0  # after the controller won, adaptive this long before the next trial
PLAN_HOLD_S = 900.0  # after the plan won, the plan this long before the controller's retrial
#                      (twice as long each time it wins again, up to an hour)


class Fallback:
    """Never worse than the plan, by measurement: when the network is saturated (on average
    ``DISTRESS`` of the incoming lanes full of halted vehicles over a window), its
    throughput is its capacity under the mode running, so the two modes can be compared by
    what they serve: the vehicles that reach their destinations per second (vehicles let
    into the network to stand in it are not served). A window of ``TRIAL_S`` under the
    network's own programs follows one under the controller; the plan then runs
    (``PLAN_HOLD_S``, twice that each time it wins again, up to an hour; then the controller
    is tried again) if it brought ``MARGIN`` more vehicles per second to their
    destinations; otherwise the controller keeps the junctions for at least
    ``COOLDOWN_S``. Unsaturated, the controller always runs (throughput is the demand then,
    whoever runs the lights).

    One decision for the whole network: a plan's value in a city centre is its
    coordination, which one junction alone on its plan does not have."""

    def __init__(self) -> None:
        self.incoming: set[str] = set()
        self.now: float | None = None
        self.mode = "adaptive"  # or "plan"
        self.window_from = 0.0
        self.until = TRIAL_S  # the current window's end
        self.served = 0  # vehicles that arrived, in the window after SETTLE_S
        self.jammed: list[float] = []  # share of incoming lanes jammed, at each look
        self.rate: dict[str, tuple[float, float]] = {}  # mode → (vehicles/s, measured at)
        self.next_trial = 0.0
        self.wins = 0  # times in a row the plan won
        self.log: list[tuple[float, str, float]] = []  # (when, mode chosen, its last rate)

    def on_plan(self, junction: Junction, lanes: Lanes, now: float) -> bool:
        """Whether ``junction`` runs the plan at ``now`` (the first call of a decision step
        looks at the whole network)."""
        self.incoming.update(i for m in junction.movements for i, _ in m)
        if now != self.now:
            if self.now is None:
                self.window_from, self.until = now, now + TRIAL_S
            self.now = now
            self._look(lanes, now)
        return self.mode == "plan"

    def _look(self, lanes: Lanes, now: float) -> None:
        if now - self.window_from >= SETTLE_S:
            self.served += lanes.arrived
        if self.incoming:
            self.jammed.append(sum(_jammed(i, lanes) for i in self.incoming)
                               / len(self.incoming))
        if now < self.until:
            return
        measured = now - self.window_from - SETTLE_S
        rate = self.served / measured if measured > 0 else 0.0
        distress = sum(self.jammed) / len(self.jammed) >= DISTRESS if self.jammed else False
        self.rate[self.mode] = (rate, now)
        other = "plan" if self.mode == "adaptive" else "adaptive"
        last = self.rate.get(other)
        recent = last is not None and now - last[1] <= TRIAL_S + PLAN_HOLD_S + SETTLE_S
        plan_wins = recent and last is not None and (
            last[0] > rate * (1 + MARGIN) if other == "plan" else rate > last[0] * (1 + MARGIN))
        if not distress:
            nxt = "adaptive"
        elif self.mode == "plan":
            nxt = "adaptive"  # after a trial or a hold, the controller is tried again
            if not plan_wins:
                self.next_trial = now + COOLDOWN_S
        elif plan_wins:
            nxt = "plan"
        else:
            nxt = "plan" if now >= self.next_trial else "adaptive"
        if nxt == "plan" and plan_wins and self.mode == "adaptive":
            self.wins += 1
        elif not plan_wins:
            self.wins = 0
        span = min(3600.0, PLAN_HOLD_S * 2 ** (self.wins - 1)) \
            if nxt == "plan" and plan_wins else TRIAL_S
        if nxt != self.mode:
            self.log.append((now, nxt, rate))
        self.mode, self.window_from, self.until = nxt, now, now + span
        self.served, self.jammed = 0, []


class OursWave(Ours):
    """``ours`` with green waves along corridors (``coordinate``)."""

    name = "ours-wave"

    def __init__(self) -> None:
        super().__init__(coordinate=True)


CONTROLLERS: dict[str, Any] = {"fixed": Fixed, "webster": Webster, "max-pressure": MaxPressure,
                               "ours": Ours, "ours-wave": OursWave}
