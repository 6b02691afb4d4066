"""Development scenarios, generated with SUMO's own tools from the PyPI package: a grid, an
arterial with cross streets, and a random network, each with a demand that rises to a rush
hour and falls again (random origins and destinations, so turning ratios vary). Small, so
that every controller on every scenario and seed runs in a few minutes on 2 cores."""

from __future__ import annotations

import gzip
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

# name → netgenerate options; demand: (begin, end, seconds between departures)
NETWORKS: dict[str, list[str]] = {
    "grid4": ["--grid", "--grid.number", "4", "--grid.length", "200",
              "--default.lanenumber", "2"],
    "arterial": ["--grid", "--grid.x-number", "6", "--grid.y-number", "2",
                 "--grid.x-length", "250", "--grid.y-length", "200",
                 "--default.lanenumber", "2"],
    "random": ["--rand", "--rand.iterations", "60", "--rand.max-distance", "250",
               "--rand.min-distance", "120", "--default.lanenumber", "2"],
}
# real street networks from OpenStreetMap that SUMO ships with its examples (under tools/),
# given a generated demand: Berlin-Neukölln (2.6 × 3.3 km, 15 signals) and central Ingolstadt
CITIES: dict[str, str] = {"berlin": "game/DRT/osm.net.xml",
                          "ingolstadt": "game/fkk_in/ingolstadt.net.xml.gz"}
DEMAND = {"grid4": [(0, 1200, 2.2), (1200, 2400, 1.1), (2400, 3600, 1.8)],
          "arterial": [(0, 1200, 2.5), (1200, 2400, 1.3), (2400, 3600, 2.0)],
          "random": [(0, 1200, 2.2), (1200, 2400, 1.2), (2400, 3600, 1.8)],
          "berlin": [(0, 1200, 4.0), (1200, 2400, 2.2), (2400, 3600, 3.2)],
          "ingolstadt": [(0, 1200, 3.0), (1200, 2400, 1.5), (2400, 3600, 2.2)]}


def sumo_home() -> Path:
    import sumo

    return Path(sumo.SUMO_HOME)


def build(name: str, folder: Path, seed: int = 1) -> tuple[Path, Path]:
    """The network and demand of scenario ``name`` in ``folder`` (built once): a network
    generated (:data:`NETWORKS`) or a city's (:data:`CITIES`), with its demand
    (:data:`DEMAND`)."""
    home = sumo_home()
    folder.mkdir(parents=True, exist_ok=True)
    net, routes = folder / f"{name}.net.xml", folder / f"{name}.rou.xml"
    if net.is_file() and routes.is_file():
        return net, routes
    if name in CITIES:
        with gzip.open(home / "tools" / CITIES[name]) if CITIES[name].endswith(".gz") else \
                open(home / "tools" / CITIES[name], "rb") as f:
            net.write_bytes(f.read())
    else:
        subprocess.run([str(home / "bin" / "netgenerate"), *NETWORKS[name], "--seed",
                        str(seed), "--default-junction-type", "traffic_light",
                        "--tls.default-type", "static", "--no-turnarounds", "true",
                        "-o", str(net)], check=True, capture_output=True)
    parts = []
    for n, (begin, end, period) in enumerate(DEMAND[name]):
        part = folder / f"{name}.{n}.rou.xml"
        subprocess.run([sys.executable, str(home / "tools" / "randomTrips.py"), "-n", str(net),
                        "-r", str(part), "-o", str(folder / f"{name}.{n}.trips.xml"),
                        "-b", str(begin), "-e", str(end), "-p", str(period),
                        "--seed", str(seed + n), "--prefix", f"p{n}_", "--validate",
                        *(["--vehicle-class", "passenger"] if name in CITIES else []),
                        "--fringe-factor", "5", "--min-distance", "300"],
                       check=True, capture_output=True)
        parts.append(part)
    _merge(parts, routes)
    return net, routes


def _merge(parts: list[Path], target: Path) -> None:
    """One route file of the parts' vehicle types (once each) and vehicles, by departure
    time."""
    vehicles, types = [], {}
    for part in parts:
        vehicles += list(ET.parse(part).getroot().iter("vehicle"))
        types.update({t.get("id"): t for t in ET.parse(part).getroot().iter("vType")})
    vehicles.sort(key=lambda v: float(v.get("depart", 0)))
    root = ET.Element("routes")
    root.extend(types.values())
    root.extend(vehicles)
    ET.ElementTree(root).write(target, encoding="utf-8", xml_declaration=True)


# SUMO's own examples, shipped in the eclipse-sumo package (EPL-2.0) and used where they lie:
# name → (folder under tools/, network, demand, additional files[, window]); for the RiLSA
# examples the demand is written by the example's own makeRoutes.py (its measured flows).
_RILSA = "sumolib/scenario/scenarios/RealWorld/RiLSA_example{n}"
SHIPPED: dict[str, tuple[Any, ...]] = {
    **{f"rilsa{n}": (_RILSA.format(n=n), f"rilsa{n}.net.xml", "flows.rou.xml",
                     ("vtypes.add.xml", f"rilsa{n}_tls.add.xml")) for n in (1, 2, 3, 4)},
    # DLR's research intersection in Braunschweig: its signal plan and the vehicles its
    # sensors recorded from 15:00 to 16:00
    "braunschweig": ("game/fokr_bs_demo", "fokr_bs.net.xml.gz", "15_16_veh.trips.xml.gz",
                     ("vtypes_default.add.xml", "signalPlan.add.xml"), (53990.0, 57600.0)),
    "a10kw": ("game/A10KW", "osm.net.xml", "osm.passenger.rou.xml", ()),
    "square": ("game/square", "square.net.xml", "square.rou.xml", ()),
    "kuehne": ("game/kuehne", "kuehne.net.xml", "kuehne.rou.xml", ()),
    "cross": ("game/cross", "cross.net.xml", "cross.rou.xml", ()),
    "corridor": ("game/corridor", "corridor.net.xml", "corridor.rou.xml", ()),
    "grid6": ("game/grid6", "grid6.net.xml", "grid6.rou.xml", ()),
}


def shipped(name: str, folder: Path
            ) -> tuple[Path, Path, tuple[Path, ...], float, float]:
    """A network SUMO ships with its examples (:data:`SHIPPED`): the network, the demand, the
    additional files (vehicle types, the intersection's own signal program) and the window
    to simulate. Demand that the example generates is written into ``folder``."""
    where, net, routes, adds, *window = SHIPPED[name]
    begin, end = window[0] if window else (0.0, 3600.0)
    src = sumo_home() / "tools" / where
    demand = src / routes
    if name.startswith("rilsa"):
        out = folder / name
        out.mkdir(parents=True, exist_ok=True)
        if not (out / routes).is_file():
            subprocess.run([sys.executable, str(src / "makeRoutes.py")], cwd=out, check=True,
                           capture_output=True)
        demand = out / routes
    return src / net, demand, tuple(src / a for a in adds), begin, end


def with_emergency(net: Path, routes: Path, depart: float, vehicle: str = "ambulance"
                   ) -> str:
    """The demand ``routes`` plus an emergency vehicle (vClass ``emergency``, no bluelight
    device: it obeys the signals) departing at ``depart`` across the network — between the
    two edges farthest apart, by the fastest path. The vehicle is written to a file of its
    own next to ``routes``; the result names both, as SUMO's ``-r`` takes them
    ("routes,own")."""
    import sumolib

    graph = sumolib.net.readNet(str(net))
    starts = ends = [e for e in graph.getEdges() if e.allows("emergency")]

    def far(a: Any, b: Any) -> float:  # sumolib's edges (sumolib has no type hints)
        (x1, y1), (x2, y2) = a.getFromNode().getCoord(), b.getToNode().getCoord()
        squared: float = (x1 - x2) ** 2 + (y1 - y2) ** 2
        return squared
    pairs = sorted(((far(a, b), a.getID(), b.getID()) for a in starts for b in ends),
                   reverse=True)
    for _, a, b in pairs[:50]:
        path, _cost = graph.getShortestPath(graph.getEdge(a), graph.getEdge(b),
                                            vClass="emergency")
        if path and len(path) > 2:
            break
    else:
        raise ValueError("no route across the network for an emergency vehicle")
    vtype = ET.Element("vType", {"id": "emergency", "vClass": "emergency",
                                 "guiShape": "emergency", "speedFactor": "1.0"})
    car = ET.Element("vehicle", {"id": vehicle, "type": "emergency", "depart": f"{depart:.2f}",
                                 "departLane": "best", "departSpeed": "max"})
    ET.SubElement(car, "route", {"edges": " ".join(e.getID() for e in path)})
    out = ET.Element("routes")
    out.extend([vtype, car])
    own = routes.with_name(routes.name.replace(".rou.xml", f".{vehicle}.rou.xml"))
    ET.ElementTree(out).write(own, encoding="utf-8", xml_declaration=True)
    return f"{routes},{own}"
