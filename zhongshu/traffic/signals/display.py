"""How a controller's choice reaches the lights: through a program of the harness's own, one
phase per state shown, switched to by phase index.

Setting a state directly (``setRedYellowGreenState``) leaves a light with a one-phase
"online" program, and SUMO then believes its red links never turn green: a vehicle that
must enter at a given speed just before such a red is discarded at insertion ("will not be
able to depart … never switches to 'G'") and never appears in the trip information. With
every green of the junction in the program from the start, SUMO sees what the light can
show, as under the network's own program.
"""

from __future__ import annotations

from typing import Any

PROGRAM = "zhongshu"
HOLD_S = 1e6  # a phase lasts until the harness switches (decisions come every few seconds)


class Display:
    """Shows states on traffic lights through the program ``PROGRAM``."""

    def __init__(self, ls: Any) -> None:
        self.ls = ls
        self.states: dict[str, list[str]] = {}  # light → its program's phases

    def prepare(self, tls: str, states: list[str]) -> None:
        """Give the light a program of these states (its greens and the yellows between
        them), so that SUMO knows them all before the first vehicle enters."""
        self.states[tls] = list(dict.fromkeys(states))
        self._load(tls)

    def show(self, tls: str, state: str) -> None:
        """Show ``state`` on the light now (a state not seen before joins its program)."""
        states = self.states.setdefault(tls, [])
        if state not in states:
            states.append(state)
            self._load(tls)
        tl = self.ls.trafficlight
        if tl.getProgram(tls) != PROGRAM:
            tl.setProgram(tls, PROGRAM)
        tl.setPhase(tls, states.index(state))
        tl.setPhaseDuration(tls, HOLD_S)

    def _load(self, tls: str) -> None:
        tl = self.ls.trafficlight
        tl.setProgramLogic(tls, tl.Logic(PROGRAM, 0, 0, [tl.Phase(HOLD_S, s)
                                                          for s in self.states[tls]]))
