"""Emergency priority: a green wave ahead of one vehicle. The vehicle obeys the signals like
any other (no SUMO bluelight device, which would let it run red lights): the gain comes from
the signals alone.

When the vehicle is within ``REACH_M`` of its next traffic light and would reach it within
``ARRIVING_S`` at its present speed (or is within ``NEAR_M``), that junction is taken from
its controller until the vehicle has crossed — a vehicle creeping far off is held up by
something else (a queue at a junction without signals), and a green held for it then only
delays the cross streets. If the vehicle's link is not green, the junction goes through
yellow (clearance for the cross traffic) to a green phase of its own program that serves the
link, and holds it until the vehicle has crossed (a second stop line inside the junction
gets its own green); then the junction returns to its controller (or to its own program,
under fixed time).
"""

from __future__ import annotations

from typing import Any

from zhongshu.traffic.signals.controllers import Junction, yellow_between
from zhongshu.traffic.signals.display import Display

REACH_M = 250.0
NEAR_M = 100.0  # closer than this, the light turns for the vehicle even while it stands
ARRIVING_S = 20.0  # farther, once it would arrive within this at its present speed


class Priority:
    """Pre-empts the signals ahead of ``vehicle``."""

    def __init__(self, ls: Any, vehicle: str, junctions: dict[str, Junction], yellow: float,
                 display: Display, adaptive: bool) -> None:
        self.ls, self.vehicle, self.junctions, self.display = ls, vehicle, junctions, display
        self.yellow, self.adaptive = yellow, adaptive
        # junction → (green phase, green at, the vehicle's link it turns green for)
        self.held: dict[str, tuple[int, float, int]] = {}
        self.programs = {j: ls.trafficlight.getProgram(j) for j in junctions}

    def step(self, now: float) -> set[str]:
        """Do this step's pre-emption; the junctions its controller must leave alone."""
        ls = self.ls
        ahead: dict[str, int] = {}
        if self.vehicle in ls.vehicle.getIDList():
            speed = ls.vehicle.getSpeed(self.vehicle)
            for tls, link, dist, _state in ls.vehicle.getNextTLS(self.vehicle):
                if tls in self.junctions and dist <= REACH_M and (
                        tls in self.held or dist <= NEAR_M or dist <= speed * ARRIVING_S):
                    ahead[tls] = link
                break  # only the next light
        for tls in [t for t in self.held if t not in ahead]:
            self._release(tls, now)
        for tls, link in ahead.items():
            j = self.junctions[tls]
            # a new light, or a second stop line inside one already held
            if tls not in self.held or self.held[tls][2] != link:
                self._serve(tls, j, link, now)
            if tls in self.held:
                k, green_at, _ = self.held[tls]
                if now >= green_at:
                    self.display.show(tls, j.greens[k])
        return set(self.held)

    def _serve(self, tls: str, j: Junction, link: int, now: float) -> None:
        """Turn the light to a green of its own program that serves ``link``: at once if it
        shows one already, else through ``yellow`` seconds of yellow."""
        serving = [k for k, g in enumerate(j.greens) if g[link] in "Gg"]
        if not serving:
            return
        state = self.ls.trafficlight.getRedYellowGreenState(tls)
        if state in j.greens and state[link] in "Gg":
            self.held[tls] = (j.greens.index(state), now, link)  # keep the green it shows
            return
        k = min(serving, key=lambda k: j.greens[k][link] != "G")
        # (from a yellow already shown, links still green that k stops turn yellow too)
        self.display.show(tls, yellow_between(state, j.greens[k]))
        self.held[tls] = (k, now + self.yellow, link)

    def _release(self, tls: str, now: float) -> None:
        k, _, _ = self.held.pop(tls)
        j = self.junctions[tls]
        if self.adaptive:
            j.current, j.since = k, now  # the controller carries on from this green
            self.display.show(tls, j.greens[k])
        else:
            self.ls.trafficlight.setProgram(tls, self.programs[tls])
