"""The signal-control development set of real cities: cut from a pinned commit of the public
``DLR-TS/sumo-scenarios`` repository (EPL-2.0) with SUMO's own tools, never committed.

    python scripts/signals_devset.py --repo PATH/TO/sumo-scenarios [--out DIR]

``--repo`` is a clone of https://github.com/DLR-TS/sumo-scenarios (or a bare copy of it)
holding commit ``PIN``; the files are read from that commit (``git show``), whatever is
checked out. What it writes into ``--out`` (default ``/tmp/zhongshu-bench/signals/devset``),
one folder per scenario with ``net.net.xml``, ``demand.rou.xml``, ``add.xml`` (the
city's vehicle types and its own signal programs) and ``window`` (begin and end seconds):

* ``bologna-acosta`` — Bologna's Andrea Costa area, 7 signals, its own programs and its
  calibrated 8:00–9:00 demand (private vehicles; the buses, which need their stops, are
  left out), whole;
* ``bologna-pasubio`` — Bologna's Pasubio area, 8 signals, the same;
* ``bologna-joined`` — both areas joined, 13 signals;
* ``acosta-corridor`` — 3 neighbouring signals of Andrea Costa cut out (``netconvert
  --keep-edges.explicit``: every edge of the three signalised junctions and the streets
  between them) with the demand cut to them (``cutRoutes.py``, departure times shifted by
  the free-flow time from the trips' origins);
* ``acosta-single`` — the Andrea Costa signal with the most links, cut out the same way.

A cut keeps every edge of its signalised junctions, so their link indices, and with them
the city's own programs for those junctions, stay valid; the programs of the others are
dropped. Ingolstadt (a submodule of that repository) is not used. Bench:
``python bench/signals.py --set real`` uses these folders when present.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

PIN = "629e34cb444db1c7c48c852760af7b4349248837"  # DLR-TS/sumo-scenarios, 2024
BOLOGNA = {  # scenario → (folder at PIN, network, demand, vehicle types, signal programs)
    "bologna-acosta": ("bologna/acosta", "acosta_buslanes.net.xml", "acosta.rou.xml",
                       "acosta_vtypes.add.xml", "acosta_tls.add.xml"),
    "bologna-pasubio": ("bologna/pasubio", "pasubio_buslanes.net.xml", "pasubio.rou.xml",
                        "pasubio_vtypes.add.xml", "pasubio_tls.add.xml"),
    "bologna-joined": ("bologna/joined", "joined_buslanes.net.xml", "joined.rou.xml",
                       "joined_vtypes.add.xml", "joined_tls.add.xml"),
}
CUTS = {"acosta-corridor": ("bologna-acosta", 3), "acosta-single": ("bologna-acosta", 1)}
WINDOW = (0.0, 3600.0)  # the Bologna demand: one morning hour, departures 0–3598 s
NEIGHBOUR_M = 400.0  # two signals are neighbours within this along the streets


def sumo_home() -> Path:
    import sumo

    return Path(sumo.SUMO_HOME)


def _show(repo: Path, path: str) -> bytes:
    res = subprocess.run(["git", "-C", str(repo), "show", f"{PIN}:{path}"],
                         capture_output=True)
    if res.returncode:
        raise SystemExit(f"cannot read {path} at {PIN[:10]} in {repo}: "
                         f"{res.stderr.decode().strip()}")
    return res.stdout


def whole(repo: Path, name: str, out: Path) -> Path:
    """A Bologna scenario as published: network, demand, vehicle types, its programs."""
    folder, net, demand, vtypes, tls = BOLOGNA[name]
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "net.net.xml").write_bytes(_show(repo, f"{folder}/{net}"))
    (d / "demand.rou.xml").write_bytes(_show(repo, f"{folder}/{demand}"))
    (d / "vtypes.add.xml").write_bytes(_show(repo, f"{folder}/{vtypes}"))
    (d / "tls.add.xml").write_bytes(_show(repo, f"{folder}/{tls}"))
    (d / "window").write_text(f"{WINDOW[0]} {WINDOW[1]}\n")
    return d


def _signals(net: Any) -> dict[str, tuple[set[str], set[str], int]]:
    """Each traffic light: its incoming and outgoing edges and its number of links."""
    out: dict[str, tuple[set[str], set[str], int]] = {}
    for tls in net.getTrafficLights():
        ins, outs, links = set(), set(), set()
        for in_lane, out_lane, link in tls.getConnections():
            ins.add(in_lane.getEdge().getID())
            outs.add(out_lane.getEdge().getID())
            links.add(link)
        out[tls.getID()] = (ins, outs, len(links))
    return out


def _between(net: Any, a: tuple[set[str], set[str], int], b: tuple[set[str], set[str], int]
             ) -> list[str] | None:
    """The edges leading from light ``a``'s exits to light ``b``'s entries within
    ``NEIGHBOUR_M`` (None if b is not that near downstream)."""
    best: list[str] | None = None
    for e in sorted(a[1]):
        for f in sorted(b[0]):
            path, cost = net.getShortestPath(net.getEdge(e), net.getEdge(f))
            if path and cost <= NEIGHBOUR_M and (best is None or len(path) < len(best)):
                best = [x.getID() for x in path]
    return best


def cut(repo_out: Path, name: str, source: str, size: int) -> Path:
    """``size`` neighbouring signals of ``source`` cut out with their demand."""
    import sumolib

    src = repo_out / source
    net = sumolib.net.readNet(str(src / "net.net.xml"), withPrograms=True)
    lights = _signals(net)
    first = max(sorted(lights), key=lambda t: lights[t][2])  # the most links
    chosen, edges = [first], set(lights[first][0] | lights[first][1])
    while len(chosen) < size:  # grow a chain: the nearest downstream or upstream neighbour
        options = []
        for t in sorted(lights):
            if t in chosen:
                continue
            for c in chosen:
                for path in (_between(net, lights[c], lights[t]),
                             _between(net, lights[t], lights[c])):
                    if path is not None:
                        options.append((len(path), t, path))
        if not options:
            raise SystemExit(f"{source}: no chain of {size} neighbouring signals")
        _, t, path = min(options)
        chosen.append(t)
        edges |= lights[t][0] | lights[t][1] | set(path)
    d = repo_out / name
    d.mkdir(parents=True, exist_ok=True)
    home = sumo_home()
    keep = d / "keep.txt"
    keep.write_text("\n".join(sorted(edges)) + "\n")
    subprocess.run([str(home / "bin" / "netconvert"), "-s", str(src / "net.net.xml"),
                    "--keep-edges.input-file", str(keep), "-o", str(d / "net.net.xml"),
                    "--no-warnings"], check=True, capture_output=True)
    env = {**os.environ, "SUMO_HOME": str(home)}
    subprocess.run([sys.executable, str(home / "tools" / "route" / "cutRoutes.py"),
                    str(d / "net.net.xml"), str(src / "demand.rou.xml"),
                    "--orig-net", str(src / "net.net.xml"),
                    "-o", str(d / "demand.rou.xml")], check=True, capture_output=True, env=env)
    # the city's own programs of the signals kept (their junctions whole: same links)
    root = ET.parse(src / "tls.add.xml").getroot()
    for logic in list(root):
        if logic.tag == "tlLogic" and logic.get("id") not in chosen:
            root.remove(logic)
    ET.ElementTree(root).write(d / "tls.add.xml", encoding="utf-8", xml_declaration=True)
    (d / "vtypes.add.xml").write_bytes((src / "vtypes.add.xml").read_bytes())
    (d / "window").write_text(f"{WINDOW[0]} {WINDOW[1]}\n")
    (d / "signals").write_text(" ".join(chosen) + "\n")
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", type=Path, required=True,
                    help="a clone of DLR-TS/sumo-scenarios holding the pinned commit")
    ap.add_argument("--out", type=Path, default=Path("/tmp/zhongshu-bench/signals/devset"))
    args = ap.parse_args()
    for name in BOLOGNA:
        print(f"{name}: {whole(args.repo, name, args.out)}")
    for name, (source, size) in CUTS.items():
        print(f"{name}: {cut(args.out, name, source, size)} "
              f"(signals {(args.out / name / 'signals').read_text().strip()})")


if __name__ == "__main__":
    main()
