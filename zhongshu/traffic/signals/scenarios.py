"""Development scenarios, generated with SUMO's own tools from the PyPI package: a grid, an
arterial with cross streets, and a random network, each with a demand that rises to a rush
hour and falls again (random origins and destinations, so turning ratios vary). Small, so
that every controller on every scenario and seed runs in a few minutes on 2 cores."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

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
DEMAND = {"grid4": [(0, 1200, 2.2), (1200, 2400, 1.1), (2400, 3600, 1.8)],
          "arterial": [(0, 1200, 2.5), (1200, 2400, 1.3), (2400, 3600, 2.0)],
          "random": [(0, 1200, 2.2), (1200, 2400, 1.2), (2400, 3600, 1.8)]}


def _sumo_home() -> Path:
    import sumo

    return Path(sumo.SUMO_HOME)


def build(name: str, folder: Path, seed: int = 1) -> tuple[Path, Path]:
    """The network and demand of scenario ``name`` in ``folder`` (built once)."""
    home = _sumo_home()
    folder.mkdir(parents=True, exist_ok=True)
    net, routes = folder / f"{name}.net.xml", folder / f"{name}.rou.xml"
    if net.is_file() and routes.is_file():
        return net, routes
    subprocess.run([str(home / "bin" / "netgenerate"), *NETWORKS[name], "--seed", str(seed),
                    "--default-junction-type", "traffic_light", "--tls.default-type",
                    "static", "--no-turnarounds", "true", "-o", str(net)],
                   check=True, capture_output=True)
    parts = []
    for n, (begin, end, period) in enumerate(DEMAND[name]):
        part = folder / f"{name}.{n}.rou.xml"
        subprocess.run([sys.executable, str(home / "tools" / "randomTrips.py"), "-n", str(net),
                        "-r", str(part), "-o", str(folder / f"{name}.{n}.trips.xml"),
                        "-b", str(begin), "-e", str(end), "-p", str(period),
                        "--seed", str(seed + n), "--prefix", f"p{n}_", "--validate",
                        "--fringe-factor", "5", "--min-distance", "300"],
                       check=True, capture_output=True)
        parts.append(part)
    _merge(parts, routes)
    return net, routes


def _merge(parts: list[Path], target: Path) -> None:
    """One route file of the parts' vehicles, by departure time."""
    vehicles = []
    for part in parts:
        vehicles += list(ET.parse(part).getroot().iter("vehicle"))
    vehicles.sort(key=lambda v: float(v.get("depart", 0)))
    root = ET.Element("routes")
    root.extend(vehicles)
    ET.ElementTree(root).write(target, encoding="utf-8", xml_declaration=True)


def with_emergency(net: Path, routes: Path, depart: float, vehicle: str = "ambulance"
                   ) -> Path:
    """A copy of ``routes`` with an emergency vehicle (vClass ``emergency``, no bluelight
    device: it obeys the signals) departing at ``depart`` across the network — between the
    two edges farthest apart, by the fastest path."""
    import sumolib

    graph = sumolib.net.readNet(str(net))
    starts = ends = [e for e in graph.getEdges() if e.allows("emergency")]

    def far(a: object, b: object) -> float:
        (x1, y1), (x2, y2) = a.getFromNode().getCoord(), b.getToNode().getCoord()  # type: ignore[attr-defined]
        return (x1 - x2) ** 2 + (y1 - y2) ** 2
    pairs = sorted(((far(a, b), a.getID(), b.getID()) for a in starts for b in ends),
                   reverse=True)
    for _, a, b in pairs[:50]:
        path, _cost = graph.getShortestPath(graph.getEdge(a), graph.getEdge(b),
                                            vClass="emergency")
        if path and len(path) > 2:
            break
    else:
        raise ValueError("no route across the network for an emergency vehicle")
    root = ET.parse(routes).getroot()
    vtype = ET.Element("vType", {"id": "emergency", "vClass": "emergency",
                                 "guiShape": "emergency", "speedFactor": "1.0"})
    car = ET.Element("vehicle", {"id": vehicle, "type": "emergency", "depart": f"{depart:.2f}",
                                 "departLane": "best", "departSpeed": "max"})
    ET.SubElement(car, "route", {"edges": " ".join(e.getID() for e in path)})
    vehicles = [v for v in root if v.tag == "vehicle"] + [car]
    vehicles.sort(key=lambda v: float(v.get("depart", 0)))
    out = ET.Element("routes")
    out.append(vtype)
    out.extend(vehicles)
    target = routes.with_name(routes.name.replace(".rou.xml", f".{vehicle}.rou.xml"))
    ET.ElementTree(out).write(target, encoding="utf-8", xml_declaration=True)
    return target
