"""The demo city's road grid and morning as a SUMO scenario (for the signal-control bench
and tests): a network with every intersection signalised and the demand its passages imply.
"""

from __future__ import annotations

import math
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from zhongshu.demo.generate import DemoCity
from zhongshu.demo.geography import LAT0, LON0
from zhongshu.traffic.signals.scenarios import sumo_home


def demo_city(folder: Path, seed: int = 42, scale: float = 0.2, begin_h: float = 7.0,
              end_h: float = 9.0) -> tuple[Path, Path, float, float]:
    """The demo city's own road grid as a SUMO network (every intersection signalised, lanes
    and speeds from ``traffic.segments``) and the demand of its morning from its passages:
    each vehicle's consecutive sightings on adjoining segments make one trip, departing at its
    first sighting. Returns the network, the routes, and the window (seconds) to simulate."""
    folder.mkdir(parents=True, exist_ok=True)
    net, routes = folder / "demo-city.net.xml", folder / "demo-city.rou.xml"
    begin, end = begin_h * 3600, end_h * 3600
    if net.is_file() and routes.is_file():
        return net, routes, begin, end
    city = DemoCity(seed=seed, scale=scale)
    grid = city.grid
    kx = 111_320 * math.cos(math.radians(LAT0))
    nodes = ET.Element("nodes")
    for node in grid.nodes.values():
        ET.SubElement(nodes, "node", {"id": node.node_id, "x": f"{(node.lon - LON0) * kx:.1f}",
                                      "y": f"{(node.lat - LAT0) * 110_540:.1f}",
                                      "type": "traffic_light"})
    edges = ET.Element("edges")
    for s in grid.segments.values():
        ET.SubElement(edges, "edge", {"id": s.segment_id, "from": s.from_node.node_id,
                                      "to": s.to_node.node_id, "numLanes": str(s.lanes),
                                      "speed": f"{s.free_flow_kmh / 3.6:.2f}"})
    ET.ElementTree(nodes).write(folder / "demo-city.nod.xml")
    ET.ElementTree(edges).write(folder / "demo-city.edg.xml")
    subprocess.run([str(sumo_home() / "bin" / "netconvert"), "--node-files",
                    str(folder / "demo-city.nod.xml"), "--edge-files",
                    str(folder / "demo-city.edg.xml"), "--no-turnarounds", "true",
                    "--tls.default-type", "static", "--no-warnings", "true", "-o", str(net)],
                   check=True, capture_output=True)
    tables = {t.name: t for t in city.tables["traffic-police"]}
    segment_of = {r[0]: r[1] for r in tables["checkpoints"].rows}
    ends = {s.segment_id: (s.from_node.node_id, s.to_node.node_id)
            for s in grid.segments.values()}
    day0 = tables["passages"].rows[0][4].replace(hour=0, minute=0, second=0, microsecond=0)
    sightings: dict[str, list[tuple[float, str]]] = {}
    for _pid, cam, plate, _kind, at, _speed in tables["passages"].rows:
        sightings.setdefault(plate, []).append(((at - day0).total_seconds(), segment_of[cam]))
    trips: list[tuple[float, list[str]]] = []
    for seen in sightings.values():
        seen.sort()
        trip: list[str] = []
        start = last = 0.0
        for t, seg in seen:
            if trip and seg == trip[-1]:
                last = t
                continue
            if trip and (t - last > 600 or ends[trip[-1]][1] != ends[seg][0]
                         or ends[seg][1] == ends[trip[-1]][0]):  # no U-turns in the net
                trips.append((start, trip))
                trip = []
            if not trip:
                start = t
            trip.append(seg)
            last = t
        if trip:
            trips.append((start, trip))
    root = ET.Element("routes")
    ET.SubElement(root, "vType", {"id": "car", "vClass": "passenger"})
    for n, (t, edges_) in enumerate(sorted(trips)):
        if begin <= t < end:
            v = ET.SubElement(root, "vehicle", {"id": f"v{n}", "type": "car",
                                                "depart": f"{t:.2f}", "departLane": "best"})
            ET.SubElement(v, "route", {"edges": " ".join(edges_)})
    ET.ElementTree(root).write(routes, encoding="utf-8", xml_declaration=True)
    return net, routes, begin, end
