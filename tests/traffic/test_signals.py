"""Signal control: the benchmark metrics against a hand computation, the yellow between two
greens, max-pressure's choice, and a whole SUMO run that is the same for the same seed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zhongshu.traffic.signals.controllers import (
    MAX_RED_S,
    MIN_GREEN_S,
    Junction,
    Lanes,
    MaxPressure,
    Ours,
    webster_plan,
)
from zhongshu.traffic.signals.sim import metrics, run, yellow_between

TRIPS = """<tripinfos>
  <tripinfo id="a" depart="0.00" departDelay="2.00" arrival="100.00" duration="100.00"
            timeLoss="30.00" waitingTime="20.00" vaporized=""/>
  <tripinfo id="b" depart="10.00" departDelay="0.00" arrival="70.00" duration="60.00"
            timeLoss="10.00" waitingTime="4.00" vaporized=""/>
  <tripinfo id="c" depart="20.00" departDelay="5.00" arrival="-1.00" duration="280.00"
            timeLoss="200.00" waitingTime="150.00" vaporized="end"/>
</tripinfos>"""
ROUTES = """<routes>
  <vehicle id="a" depart="0"/><vehicle id="b" depart="10"/><vehicle id="c" depart="20"/>
  <vehicle id="d" depart="250"/><vehicle id="e" depart="400"/>
</routes>"""


def test_metrics_equal_the_hand_computation(tmp_path: Path) -> None:
    (tmp_path / "t.xml").write_text(TRIPS)
    (tmp_path / "r.xml").write_text(ROUTES)
    m = metrics(tmp_path / "t.xml", tmp_path / "r.xml", end=300)
    # delays: a 30+2, b 10+0, c 200+5 (on the road at the end), d never entered: 300-250;
    # e was due after the end and does not count
    assert m["avg_delay"] == pytest.approx((32 + 10 + 205 + 50) / 4)
    assert (m["finished"], m["unfinished"], m["never_entered"]) == (2, 1, 1)
    assert m["avg_duration"] == pytest.approx((100 + 60) / 2)
    assert m["avg_waiting"] == pytest.approx((20 + 4 + 150) / 3)
    assert m["delay_index"] == pytest.approx((100 + 60) / (70 + 50))


def test_yellow_between_two_greens() -> None:
    assert yellow_between("GGrrGgrr", "rrGGrrGG") == "yyrryyrr"
    assert yellow_between("GGrrGg", "GGGGrr") == "GGrryy"


def test_max_pressure_takes_the_phase_with_the_largest_pressure() -> None:
    j = Junction("j", ["Gr", "rG"], [[("n_in", "s_out")], [("e_in", "w_out")]])

    def seen(h: dict[str, int]) -> Lanes:
        return Lanes(h, h, {})
    assert MaxPressure().choose(j, seen({"n_in": 5, "s_out": 1, "e_in": 6, "w_out": 4}), 0) == 0
    assert MaxPressure().choose(j, seen({"n_in": 5, "s_out": 4, "e_in": 6, "w_out": 0}), 0) == 1


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    import sumo

    home = Path(sumo.SUMO_HOME)
    d = tmp_path_factory.mktemp("grid")
    net, rou = d / "g.net.xml", d / "g.rou.xml"
    subprocess.run([str(home / "bin" / "netgenerate"), "--grid", "--grid.number", "3",
                    "--grid.length", "150", "--default-junction-type", "traffic_light",
                    "-o", str(net)], check=True, capture_output=True)
    subprocess.run([sys.executable,
                    str(home / "tools" / "randomTrips.py"), "-n", str(net), "-r", str(rou),
                    "-e", "600", "-p", "3", "--seed", "7", "--validate"], check=True,
                   capture_output=True)
    return net, rou


def test_a_run_is_the_same_for_the_same_seed(grid: tuple[Path, Path]) -> None:
    net, rou = grid
    first = run(net, rou, MaxPressure(), seed=3, end=900)
    assert first == run(net, rou, MaxPressure(), seed=3, end=900)
    assert first["finished"] > 100 and first["avg_delay"] > 0


def test_ours_keeps_yellow_and_minimum_green_at_every_step(grid: tuple[Path, Path]) -> None:
    net, rou = grid
    states: dict[str, list[tuple[float, str]]] = {}
    run(net, rou, Ours(), seed=3, end=900, step=10, yellow=3,
        trace=lambda t, j, s: states.setdefault(j, []).append((t, s)))
    assert states
    changes = 0
    for series in states.values():
        # runs of equal states: (state, first second, seconds held)
        runs: list[list[object]] = []
        for t, s in series:
            if runs and runs[-1][0] == s:
                runs[-1][2] = t - runs[-1][1] + 1
            else:
                runs.append([s, t, 1.0])
        for prev, cur, nxt in zip(runs, runs[1:], runs[2:], strict=False):
            if "y" in str(cur[0]):
                changes += 1
                assert cur[2] == 3, cur            # yellow lasts exactly `yellow`
                assert "y" not in str(prev[0]) and "y" not in str(nxt[0])
            elif "y" not in str(prev[0]):
                raise AssertionError(f"green to green without yellow: {prev} → {cur}")
        for state, _, held in runs[1:-1]:
            if "y" not in str(state):
                assert held >= MIN_GREEN_S, (state, held)
    assert changes > 10


def test_a_waiting_phase_is_served_after_the_maximum_red() -> None:
    j = Junction("j", ["Gr", "rG"], [[("n_in", "s_out")], [("e_in", "w_out")]])
    busy = Lanes({"n_in": 20, "e_in": 1}, {"n_in": 20, "e_in": 1}, {})
    ours = Ours()
    assert ours.choose(j, busy, 0) == 0
    assert ours.choose(j, busy, MAX_RED_S - 1) == 0     # the busier phase keeps its green
    assert ours.choose(j, busy, MAX_RED_S) == 1         # until the other has waited too long


def test_emergency_priority_clears_the_way_on_an_arterial(tmp_path: Path) -> None:
    from zhongshu.traffic.signals.controllers import Fixed
    from zhongshu.traffic.signals.scenarios import build, with_emergency

    net, rou = build("arterial", tmp_path)
    with_amb = with_emergency(net, rou, depart=1500)  # in the rush hour
    plain = run(net, with_amb, Fixed(), seed=1, end=1900, emergency="ambulance")
    green = run(net, with_amb, Fixed(), seed=1, end=1900, emergency="ambulance",
                priority=True)
    assert plain["emergency"]["finished"] and green["emergency"]["finished"]
    assert green["emergency"]["ratio"] <= 1.2 < plain["emergency"]["ratio"]


def test_webster_plan_by_hand() -> None:
    # q = 600 and 300 veh/h, s = 1800: y = 1/3 and 1/6, Y = 1/2; L = 10 s
    # C = (1.5 · 10 + 5) / (1 − 1/2) = 40 s; greens (40 − 10) · y / Y = 20 s and 10 s
    assert webster_plan([600, 300], 10) == (40.0, [20.0, 10.0])
    cycle, greens = webster_plan([1200, 600], 10)  # Y = 1: oversaturated, longest cycle
    assert cycle == 150 and greens == pytest.approx([140 * 2 / 3, 140 / 3])
    assert webster_plan([0, 0], 10) == (30.0, [10.0, 10.0])  # no traffic: the shortest cycle


def test_the_demo_citys_own_grid_and_morning_run_in_sumo(tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    from zhongshu.demo.generate import DemoCity
    from zhongshu.traffic.signals.scenarios import demo_city

    net, rou, begin, end = demo_city(tmp_path, seed=7, scale=0.01, begin_h=7.5, end_h=8.0)
    grid = DemoCity(seed=7, scale=0.01).grid
    root = ET.parse(net).getroot()
    assert {e.get("id") for e in root.iter("edge") if not e.get("function")} == \
        {s.segment_id for s in grid.segments.values()}
    assert len(list(root.iter("tlLogic"))) == len(grid.nodes)
    vehicles = list(ET.parse(rou).getroot().iter("vehicle"))
    assert vehicles and all(begin <= float(v.get("depart")) < end for v in vehicles)
    m = run(net, rou, MaxPressure(), seed=1, begin=begin, end=end + 1800)
    assert m["finished"] + m["unfinished"] + m["never_entered"] == len(vehicles)
    assert m["finished"] > 0.8 * len(vehicles)
