"""Emergency priority: a green wave ahead of one vehicle. The vehicle obeys the signals like
any other (no SUMO bluelight device, which would let it run red lights): the gain comes from
the signals alone.

When the vehicle is within ``REACH_M`` of its next traffic light, that junction is taken
from its controller: if the vehicle's link is not green, the junction goes through yellow
(clearance for the cross traffic) to a green phase of its own program that serves the link,
and holds it until the vehicle has crossed; then the junction returns to its controller (or
to its own program, under fixed time).
"""

from __future__ import annotations

from typing import Any

from zhongshu.traffic.signals.controllers import Junction, yellow_between

REACH_M = 250.0


class Priority:
    """Pre-empts the signals ahead of ``vehicle``."""

    def __init__(self, ls: Any, vehicle: str, junctions: dict[str, Junction], yellow: float,
                 adaptive: bool) -> None:
        self.ls, self.vehicle, self.junctions = ls, vehicle, junctions
        self.yellow, self.adaptive = yellow, adaptive
        self.held: dict[str, tuple[int, float]] = {}  # junction → (green phase, green at)
        self.programs = {j: ls.trafficlight.getProgram(j) for j in junctions}

    def step(self, now: float) -> set[str]:
        """Do this step's pre-emption; the junctions its controller must leave alone."""
        ls = self.ls
        ahead: dict[str, int] = {}
        if self.vehicle in ls.vehicle.getIDList():
            for tls, link, dist, _state in ls.vehicle.getNextTLS(self.vehicle):
                if dist <= REACH_M and tls in self.junctions:
                    ahead[tls] = link
                break  # only the next light
        for tls in [t for t in self.held if t not in ahead]:
            self._release(tls, now)
        for tls, link in ahead.items():
            j = self.junctions[tls]
            if tls not in self.held:
                serving = [k for k, g in enumerate(j.greens) if g[link] in "Gg"]
                if not serving:
                    continue
                k = min(serving, key=lambda k: j.greens[k][link] != "G")
                state = ls.trafficlight.getRedYellowGreenState(tls)
                if state[link] in "Gg":
                    self.held[tls] = (k, now)
                    continue
                ls.trafficlight.setRedYellowGreenState(tls, yellow_between(state, j.greens[k]))
                self.held[tls] = (k, now + self.yellow)
            k, green_at = self.held[tls]
            if now >= green_at:
                ls.trafficlight.setRedYellowGreenState(tls, j.greens[k])
        return set(self.held)

    def _release(self, tls: str, now: float) -> None:
        k, _ = self.held.pop(tls)
        j = self.junctions[tls]
        if self.adaptive:
            j.current, j.since = k, now  # the controller carries on from this green
            self.ls.trafficlight.setRedYellowGreenState(tls, j.greens[k])
        else:
            self.ls.trafficlight.setProgram(tls, self.programs[tls])
