"""The simulation harness: one SUMO run (libsumo, in process) of a network and its demand
under a controller, and the metrics of published signal-control benchmarks.

SUMO runs with ``--time-to-teleport -1`` (a jam stays a jam) and writes the trips of vehicles
still on the road at the end, so gridlock is never hidden; gridlock is a failure, measured
(:func:`stuck`, :class:`GridlockWatch`): over ``GRIDLOCK_SHARE`` of the demand never entered
or stuck on the road. Phases are read from the
network's own programs; a controller chooses among their green phases, and the harness puts
``yellow`` seconds of yellow between two different greens.
"""

from __future__ import annotations

import gzip
import os
import sys
import tempfile
import warnings
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from zhongshu.traffic.signals.controllers import (
    PLAN,
    Controller,
    Fixed,
    Junction,
    Lanes,
    yellow_between,
)
from zhongshu.traffic.signals.display import Display
from zhongshu.traffic.signals.priority import Priority


@contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """SUMO's messages (one line per vehicle it cannot insert, thousands on some demands) go
    to ``path``, not the terminal; what matters of them is in the metrics, and a fatal
    error comes back as the exception's message."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "wb") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _libsumo() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        devnull = os.open(os.devnull, os.O_WRONLY)
        saved = os.dup(1)
        os.dup2(devnull, 1)  # libsumo prints a pyarrow version notice on import
        try:
            import libsumo
        finally:
            os.dup2(saved, 1)
            os.close(devnull)
            os.close(saved)
    return libsumo


REACH_M = (50.0, 250.0)


def _reach(max_speed: float, step: float) -> float:
    """How far before the stop line a moving vehicle counts as coming: the distance it
    covers at the lane's speed limit in one decision step (139 m at 50 km/h and 10 s),
    within ``REACH_M``."""
    return min(REACH_M[1], max(REACH_M[0], max_speed * step))


def junctions(ls: Any) -> list[Junction]:
    """The traffic lights with at least two green phases, read from their active programs
    (the network's, or one an additional file loaded and switched to)."""
    out = []
    for tls in ls.trafficlight.getIDList():
        active = ls.trafficlight.getProgram(tls)
        logics = ls.trafficlight.getAllProgramLogics(tls)
        logic = next((lg for lg in logics if lg.programID == active), logics[0])
        greens = _greens([p.state for p in logic.phases])
        if len(greens) < 2:
            continue
        links = ls.trafficlight.getControlledLinks(tls)
        movements = [[(i, o) for k, ls_ in enumerate(links) if g[k] in "Gg" for i, o, _ in ls_]
                     for g in greens]
        out.append(Junction(tls, greens, movements))
    return out


class Plans:
    """The network's own programs, kept while the harness runs its own: for each light, its
    program and where that program would be at any time had it run all along (a static
    program is a fixed cycle from where it stood at the start; others — actuated — restart at
    their first phase), so that a junction handed back to it is in step with its neighbours
    (a plan's coordination is in its offsets)."""

    def __init__(self, ls: Any, junctions: list[Junction], begin: float) -> None:
        self.ls = ls
        # light → (program, phase durations, phase states, static, phase at begin, its end)
        self.own: dict[str, tuple[str, list[float], list[str], bool, int, float]] = {}
        tl = ls.trafficlight
        for j in junctions:
            program = tl.getProgram(j.id)
            logics = tl.getAllProgramLogics(j.id)
            logic = next((lg for lg in logics if lg.programID == program), logics[0])
            self.own[j.id] = (program, [p.duration for p in logic.phases],
                              [p.state for p in logic.phases], logic.type == 0,
                              tl.getPhase(j.id), tl.getNextSwitch(j.id))

    def at(self, tls: str, t: float) -> tuple[int, float]:
        """The program's phase at time ``t`` and the seconds left in it."""
        _program, durations, _states, static, k, ends = self.own[tls]
        if not static:
            return 0, durations[0]
        while ends <= t:
            k = (k + 1) % len(durations)
            ends += durations[k]
        return k, ends - t

    def state(self, tls: str, t: float) -> str:
        """What the program shows at time ``t``."""
        return self.own[tls][2][self.at(tls, t)[0]]

    def resume(self, tls: str, t: float) -> None:
        """Hand the light back to its program, where it would be now."""
        tl = self.ls.trafficlight
        k, left = self.at(tls, t)
        tl.setProgram(tls, self.own[tls][0])
        tl.setPhase(tls, k)
        # set between two steps, a duration counts from the next one: this one is shown too
        tl.setPhaseDuration(tls, max(0.0, left - self.ls.simulation.getDeltaT()))


class RedWatch:
    """Starvation, whatever the controller: the longest time a lane with halting vehicles
    stood red (none of its links green) at a signalised junction."""

    def __init__(self, ls: Any, junctions: list[Junction]) -> None:
        self.ls, self.longest = ls, 0.0
        self.links: dict[str, dict[str, list[int]]] = {}  # junction → lane → link indices
        for j in junctions:
            lanes: dict[str, list[int]] = {}
            for k, group in enumerate(ls.trafficlight.getControlledLinks(j.id)):
                for i, _o, _via in group:
                    lanes.setdefault(i, []).append(k)
            self.links[j.id] = lanes
        self.red_since: dict[str, float] = {}

    def step(self, now: float) -> None:
        """Look at every watched lane at time ``now``."""
        for tls, lanes in self.links.items():
            state = self.ls.trafficlight.getRedYellowGreenState(tls)
            for lane, ks in lanes.items():
                if any(state[k] in "Gg" for k in ks) or \
                        self.ls.lane.getLastStepHaltingNumber(lane) == 0:
                    self.red_since.pop(lane, None)
                else:
                    since = self.red_since.setdefault(lane, now)
                    self.longest = max(self.longest, now - since)


GRIDLOCK_SHARE = 0.05  # of the demand never entered or stuck on the road: gridlock
STANDING_S = 180.0  # a vehicle that has stood this long (in all) is stuck, not in transit


class GridlockWatch:
    """When gridlock set in: every ``every`` seconds, the vehicles kept out (due but not
    inserted: SUMO's pending vehicles) and those on the road standing for ``STANDING_S`` or
    more without moving, as a share of the vehicles due so far. The time to gridlock is
    when that share last rose above ``GRIDLOCK_SHARE`` and stayed above it to the end (−1
    if it is below at the end: a jam that cleared is delay, not gridlock)."""

    def __init__(self, ls: Any, begin: float, every: float = 10.0) -> None:
        self.ls, self.begin, self.every = ls, begin, every
        self.departed = 0
        self.above_since: float | None = None
        self.share = 0.0

    def step(self, now: float) -> None:
        """Count this step's departures; look at the jam every ``every`` seconds."""
        ls = self.ls
        self.departed += ls.simulation.getDepartedNumber()
        if (now - self.begin) % self.every:
            return
        pending = len(ls.simulation.getPendingVehicles())
        standing = sum(1 for v in ls.vehicle.getIDList()
                       if ls.vehicle.getWaitingTime(v) >= STANDING_S)
        due = self.departed + pending
        self.share = (pending + standing) / due if due else 0.0
        if self.share <= GRIDLOCK_SHARE:
            self.above_since = None
        elif self.above_since is None:
            self.above_since = now

    @property
    def time_to_gridlock(self) -> float:
        """Seconds from the start until gridlock set in for good; −1 for none."""
        if self.above_since is None:
            return -1.0
        return self.above_since - self.begin


def stuck(m: dict[str, float], discarded: int = 0) -> dict[str, float]:
    """Gridlock from a run's metrics: ``stuck_share`` = (never entered + unfinished trips
    that stood ``STANDING_S`` or more in all) / the demand (every trip of the window, and those SUMO
    discarded), and ``gridlock`` = 1 when that share is over ``GRIDLOCK_SHARE``."""
    demand = m["finished"] + m["unfinished"] + m["never_entered"] + discarded
    share = (m["never_entered"] + m["stuck_on_road"]) / demand if demand else 0.0
    return {"stuck_share": share, "gridlock": float(share > GRIDLOCK_SHARE)}


def _greens(states: list[str]) -> list[str]:
    """The green phases of a program, each once: states with a green link and no yellow or
    red-yellow (``u``, the start-up signal some countries show before green) — those are
    transitions between greens. If that leaves fewer than two, red-yellow phases count."""
    for transitional in ("yYu", "yY"):
        greens = [s for s in states if any(c in "Gg" for c in s)
                  and not any(c in transitional for c in s)]
        if len(set(greens)) >= 2:
            break
    return list(dict.fromkeys(greens))


def run(net: Path, routes: Path | str, controller: Controller, seed: int, begin: float = 0,
        end: float = 3600, step: float = 10, yellow: float = 3,
        trace: Callable[[float, str, str], None] | None = None,
        emergency: str | None = None, priority: bool = False,
        additional: tuple[Path, ...] = (), trips_to: Path | None = None) -> dict[str, Any]:
    """One run; its metrics (see :func:`metrics`), ``longest_red`` (:class:`RedWatch`,
    seconds), ``discarded``: vehicles SUMO loaded but refused to insert at all (a given
    departure speed impossible where they start) — they have no trip information, so they
    are counted here and in no other metric —, gridlock (:func:`stuck`: ``stuck_share``,
    ``gridlock``) and ``time_to_gridlock`` (:class:`GridlockWatch`, seconds from ``begin``;
    −1 for none).

    ``trace(time, junction, state)`` is called every step for every controlled junction (for
    checks). ``emergency``: a vehicle of the demand whose trip is also reported (duration,
    free-flow time, their ratio); with ``priority``, the signals ahead of it are pre-empted
    (:mod:`.priority`). ``routes``: a demand file, or several separated by commas.
    ``additional``: SUMO additional files (traffic-light programs, vehicle types).
    ``trips_to``: where to keep SUMO's trip information (for checks)."""
    ls = _libsumo()
    with tempfile.TemporaryDirectory(prefix="zs-sumo-") as tmp, \
            _stderr_to(Path(tmp) / "sumo.log"):
        trips = Path(tmp) / "tripinfo.xml"
        ls.start(["sumo", "-n", str(net), "-r", str(routes), "--begin", str(begin),
                  "--end", str(end), "--seed", str(seed), "--time-to-teleport", "-1",
                  "--tripinfo-output", str(trips), "--tripinfo-output.write-unfinished",
                  "--tripinfo-output.write-undeparted",
                  *(["-a", ",".join(str(a) for a in additional)] if additional else []),
                  "--no-step-log", "--no-warnings", "--duration-log.disable"])
        try:
            every = junctions(ls)
            watch = RedWatch(ls, every)
            jam = GridlockWatch(ls, begin)
            control = [] if isinstance(controller, Fixed) else every
            lanes = {lane for j in control for m in j.movements for mv in m for lane in mv}
            plans = Plans(ls, control, begin)
            display = Display(ls)
            pre = Priority(ls, emergency, {j.id: j for j in every}, yellow, display,
                           adaptive=bool(control)) if emergency and priority else None
            held: set[str] = set()
            lengths = {la: ls.lane.getLength(la) for la in lanes}
            reach = {la: _reach(ls.lane.getMaxSpeed(la), step) for la in lanes}
            entered: dict[str, deque[float]] = {lane: deque() for lane in lanes}  # entries
            on_lane: dict[str, set[str]] = {lane: set() for lane in lanes}
            count_flow = getattr(controller, "needs_flow", False)
            switch: dict[str, tuple[float, int]] = {}  # junction → (green at, phase)
            before: dict[str, set[str]] = {lane: set() for lane in lanes}  # at the last look
            looked = begin - step
            arrived = 0  # since the last look
            for j in control:
                display.prepare(j.id, [*j.greens, *(yellow_between(a, b) for a in j.greens
                                                    for b in j.greens if a != b)])
                display.show(j.id, j.greens[0])
            t = begin
            while t < end:
                if count_flow:  # vehicles entering each incoming lane, for flows
                    for la in lanes:
                        now_on = set(ls.lane.getLastStepVehicleIDs(la))
                        entered[la].extend([t] * len(now_on - on_lane[la]))
                        on_lane[la] = now_on
                if control and (t - begin) % step == 0:
                    ids = {la: set(ls.lane.getLastStepVehicleIDs(la)) for la in lanes}
                    seen = Lanes({la: ls.lane.getLastStepHaltingNumber(la) for la in lanes},
                                 {la: _near(ls, ids[la], lengths[la], reach[la])
                                  for la in lanes},
                                 {la: ls.lane.getLastStepOccupancy(la) for la in lanes},
                                 {la: _flow(entered[la], t) for la in lanes}
                                 if count_flow else {},
                                 {la: len(before[la] - ids[la]) for la in lanes},
                                 t - looked, arrived, lengths)
                    arrived = 0
                    before, looked = ids, t
                    for j in control:
                        if j.id in switch or j.id in held:
                            continue
                        k = controller.choose(j, seen, t)
                        if k == PLAN:
                            if not j.on_plan:
                                _to_plan(ls, j, plans, display, switch, t, yellow)
                            continue
                        if j.on_plan:  # back from the plan, at one of its greens
                            shown = ls.trafficlight.getRedYellowGreenState(j.id)
                            if shown not in j.greens:
                                continue  # the plan is between greens: wait for one
                            j.current, j.since, j.on_plan = j.greens.index(shown), t, False
                            display.show(j.id, shown)
                        if k is not None and k != j.current:
                            display.show(j.id, yellow_between(j.greens[j.current],
                                                              j.greens[k]))
                            switch[j.id] = (t + yellow, k)
                if pre is not None:
                    held = pre.step(t)
                    for tls in held:
                        switch.pop(tls, None)
                for j in control:
                    if j.id in held:
                        j.on_plan = False  # priority shows its own greens
                    due = switch.get(j.id)
                    if due is not None and t >= due[0] and j.id not in held:
                        del switch[j.id]
                        if due[1] == PLAN:
                            plans.resume(j.id, t)
                            j.on_plan = True
                            continue
                        j.current, j.since = due[1], t
                        display.show(j.id, j.greens[j.current])
                watch.step(t)
                jam.step(t)
                if trace is not None:
                    for j in control:
                        trace(t, j.id, ls.trafficlight.getRedYellowGreenState(j.id))
                ls.simulationStep()
                arrived += ls.simulation.getArrivedNumber()
                t = ls.simulation.getTime()
                if ls.simulation.getMinExpectedNumber() == 0:
                    break
        finally:
            ls.close()
        out: dict[str, Any] = {**metrics(trips), "longest_red": watch.longest}
        out["discarded"] = discarded(str(routes), trips, begin, end)
        out.update(stuck(out, out["discarded"]))
        out["time_to_gridlock"] = jam.time_to_gridlock
        if emergency:
            out["emergency"] = trip_of(trips, emergency)
        if trips_to is not None:
            trips_to.write_bytes(trips.read_bytes())
        return out


def _to_plan(ls: Any, j: Junction, plans: Plans, display: Display,
             switch: dict[str, tuple[float, int]], t: float, yellow: float) -> None:
    """Hand ``j`` back to its own program: through yellow for the links its green has that
    the program's state then has not (at once if there are none)."""
    shown = ls.trafficlight.getRedYellowGreenState(j.id)
    clearing = yellow_between(shown, plans.state(j.id, t + yellow))
    if clearing == shown or "y" not in clearing:
        plans.resume(j.id, t)
        j.on_plan = True
        return
    display.show(j.id, clearing)
    switch[j.id] = (t + yellow, PLAN)


def _near(ls: Any, vehicles: set[str], length: float, reach_m: float) -> int:
    """Of the vehicles on a lane, those within ``reach_m`` of its end (the stop line, on an
    incoming lane): those a green in the next step or two can serve."""
    return sum(1 for v in vehicles if length - ls.vehicle.getLanePosition(v) <= reach_m)


def _flow(times: deque[float], now: float, window: float = 600.0) -> float:
    """Vehicles per hour over the last ``window`` seconds (or since the start)."""
    while times and times[0] < now - window:
        times.popleft()
    span = min(window, max(now, 1.0))
    return len(times) * 3600.0 / span


def discarded(routes: str, tripinfo: Path, begin: float, end: float) -> int:
    """Vehicles and trips of the demand files (comma-separated) due in [begin, end) that have
    no trip information: SUMO refused to insert them at all. (Vehicles of ``<flow>``s are
    not listed in the files; SUMO's undeparted output covers those that wait.)"""
    seen = {info.get("id") for info in ET.parse(tripinfo).getroot().iter("tripinfo")}
    missing = 0
    for name in routes.split(","):
        with gzip.open(name) if name.endswith(".gz") else open(name, "rb") as f:
            for _, el in ET.iterparse(f):
                if el.tag in ("vehicle", "trip"):
                    try:
                        due = begin <= float(el.get("depart", "")) < end
                    except ValueError:  # "triggered", "now"…: not a time
                        due = False
                    missing += due and el.get("id") not in seen
                    el.clear()
    return missing


def trip_of(tripinfo: Path, vehicle: str) -> dict[str, float] | None:
    """One vehicle's trip: duration, free-flow time (duration − time loss) and their ratio
    (None if it never entered)."""
    for info in ET.parse(tripinfo).getroot().iter("tripinfo"):
        if info.get("id") == vehicle:
            d, loss = float(info.get("duration", 0)), float(info.get("timeLoss", 0))
            finished = float(info.get("arrival", -1)) >= 0 and not info.get("vaporized")
            return {"duration": d, "free_flow": d - loss,
                    "ratio": d / (d - loss) if d > loss else float("inf"),
                    "finished": float(finished)}
    return None


def metrics(tripinfo: Path) -> dict[str, float]:
    """The benchmark metrics of one run, from SUMO's trip information written with
    unfinished and undeparted trips (a vehicle that never entered has ``depart="-1"`` and its
    departure delay up to the end).

    * ``avg_delay`` = (Σ time loss + departure delay over every trip, finished or not, and
      the departure delay of vehicles that never entered, i.e. end − planned departure)
      / vehicles;
    * ``avg_duration`` — mean trip duration of finished trips;
    * ``finished``, ``unfinished`` (still on the road at the end), ``never_entered``;
      ``stuck_on_road``: the unfinished that stood ``STANDING_S`` or more in all (a trip
      still moving at the end is in transit: a window's end cuts every long trip);
    * ``avg_waiting`` — mean time spent halted, over trips that entered;
    * ``delay_index`` — Σ duration / Σ (duration − time loss) of finished trips (actual over
      free-flow travel time).
    """
    loss = duration = free = waiting = 0.0
    finished = unfinished = never = old = 0
    for info in ET.parse(tripinfo).getroot().iter("tripinfo"):
        tl, dd = float(info.get("timeLoss", 0)), float(info.get("departDelay", 0))
        loss += tl + dd
        if float(info.get("depart", 0)) < 0:
            never += 1
            continue
        waiting += float(info.get("waitingTime", 0))
        if float(info.get("arrival", -1)) >= 0 and info.get("vaporized", "") == "":
            finished += 1
            d = float(info.get("duration", 0))
            duration += d
            free += d - tl
        else:
            unfinished += 1
            old += float(info.get("waitingTime", 0)) >= STANDING_S
    entered = finished + unfinished
    n = entered + never
    return {"avg_delay": loss / n if n else 0.0,
            "avg_duration": duration / finished if finished else 0.0,
            "finished": finished, "unfinished": unfinished, "never_entered": never,
            "stuck_on_road": old,
            "avg_waiting": waiting / entered if entered else 0.0,
            "delay_index": duration / free if free else 0.0}
