"""Signal controllers behind one small interface: each decision step a controller looks at
the lanes (through :class:`Junction`) and chooses a green phase of the network's own program
for every traffic light; the harness inserts the yellow between two greens.

* ``fixed`` — the network's own programs, untouched.
* ``max-pressure`` — the standard baseline, untuned: the green phase whose movements carry
  the largest pressure (vehicles halting on each incoming lane minus those halting on its
  outgoing lane, summed over the phase's movements).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


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

    def choose(self, junction: Junction, halting: dict[str, int], now: float) -> int | None:
        ...


class Fixed:
    """The network's own programs."""

    name = "fixed"

    def choose(self, junction: Junction, halting: dict[str, int], now: float) -> int | None:
        return None


class MaxPressure:
    """Max-pressure, as published: no tuning, no guards beyond the step and the yellow."""

    name = "max-pressure"

    def choose(self, junction: Junction, halting: dict[str, int], now: float) -> int | None:
        def pressure(k: int) -> int:
            return sum(halting.get(i, 0) - halting.get(o, 0) for i, o in junction.movements[k])
        best = max(range(len(junction.greens)), key=lambda k: (pressure(k), k == junction.current))
        return best


CONTROLLERS: dict[str, Any] = {"fixed": Fixed, "max-pressure": MaxPressure}
