"""The demo city's data: deterministic for a seed, sized by a scale (1 = one day of a mid-size
city; 0.01 for tests).

Passages follow routes on the road grid with morning and evening rush hours and slower speeds
when the roads are busy; garages fill and empty (they turn cars away when full); hospitals
have a morning peak; districts differ in size and traffic. Every member stores the data its own
way: different engines, column names, plate formats and district identifiers.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from zhongshu.demo.geography import DISTRICTS, POPULATION, STREETS, Grid

DAY = date(2026, 11, 24)
HISTORY_DAYS = 27  # Westlake's garage counts go back four weeks, the day included
_MIDNIGHT = datetime(DAY.year, DAY.month, DAY.day)
_PLATE_CHARS = "0123456789" * 3 + "ABCDEFGHJKLMNPQRSTUVWXYZ"


@dataclass
class Table:
    """One source table: logical column types, a primary key, indexes and the rows."""

    name: str
    columns: list[tuple[str, str]]  # (name, logical type: int|str|float|ts|bool|money)
    primary_key: str | None = None
    indexes: tuple[str, ...] = ()
    rows: list[tuple[Any, ...]] = field(default_factory=list)


def _at(seconds: float) -> datetime:
    return _MIDNIGHT + timedelta(seconds=int(seconds))


def rush_factor(hour: float) -> float:
    """Traffic intensity 0..1 at ``hour`` of a weekday (peaks at 8:00 and 18:00)."""
    return max(math.exp(-((hour - 8.0) ** 2) / 1.2), math.exp(-((hour - 18.0) ** 2) / 1.8))


def _departure(rnd: random.Random) -> float:
    r = rnd.random()
    if r < 0.32:
        h = rnd.gauss(8.0, 0.8)
    elif r < 0.64:
        h = rnd.gauss(18.0, 1.0)
    else:
        h = rnd.uniform(5.5, 23.5)
    return min(max(h, 0.0), 23.99) * 3600


# a visit: time with doctors, examinations and the pharmacy, plus a queue at the payment
# window for each payment (paying once: one, at the end; paying each step: two to four)
CARE_MIN, CARE_SIGMA = 60, 0.2
QUEUE_MIN = (8, 16)
PAYMENTS_EACH_STEP = (2, 3, 3, 4)


def _stay(rnd: random.Random, paid_once: bool) -> float:
    """Seconds from arrival to departure of one hospital visit."""
    payments = 1 if paid_once else rnd.choice(PAYMENTS_EACH_STEP)
    care = rnd.lognormvariate(math.log(CARE_MIN * 60), CARE_SIGMA)
    return care + sum(rnd.uniform(*QUEUE_MIN) * 60 for _ in range(payments))


def plate(rnd: random.Random) -> str:
    """A synthetic Zhejiang-A plate in canonical form, e.g. ``浙A3K8Z1``."""
    return "浙A" + "".join(rnd.choice(_PLATE_CHARS) for _ in range(5))


def id_number(rnd: random.Random) -> str:
    """A synthetic 18-digit resident id number with a valid ISO 7064 check digit."""
    region = rnd.choice(["330102", "330105", "330106", "330108", "330109", "330110"])
    born = date(1940, 1, 1) + timedelta(days=rnd.randrange(0, 365 * 82))
    body = f"{region}{born:%Y%m%d}{rnd.randrange(0, 1000):03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    check = "10X98765432"[sum(int(c) * w for c, w in zip(body, weights, strict=True)) % 11]
    return body + check


class DemoCity:
    """All demo tables, by source, generated on construction."""

    def __init__(self, seed: int = 42, scale: float = 0.01,
                 progress: Callable[[str, float], None] | None = None) -> None:
        if scale <= 0:
            raise ValueError("scale must be positive")
        self.seed, self.scale = seed, scale
        self.grid = Grid(seed)
        self._progress = progress or (lambda _stage, _frac: None)
        rnd = random.Random(f"{seed}-vehicles")
        n_vehicles = int(60_000 * scale) + 60
        seen: set[str] = set()
        self.vehicles: list[tuple[str, str]] = []
        while len(self.vehicles) < n_vehicles:
            p = plate(rnd)
            if p in seen:
                continue
            seen.add(p)
            kind = rnd.choices(["car", "taxi", "bus", "truck", "van"], [82, 6, 3, 5, 4])[0]
            self.vehicles.append((p, kind))
        self.tables: dict[str, list[Table]] = {}
        self._traffic()
        self._parking()
        self._health()
        self._parks_and_civil()

    # --- traffic-police -------------------------------------------------------------------

    def _traffic(self) -> None:
        g = self.grid
        checkpoints = Table("checkpoints", [("camera_id", "str"), ("segment_id", "str"),
                                            ("district", "str"), ("street", "str"),
                                            ("lon", "float"), ("lat", "float"),
                                            ("direction", "str")], "camera_id", ("segment_id",))
        cams: dict[str, tuple[str, str]] = {}
        for n, seg in enumerate(g.segments.values()):
            a, b = seg.from_node, seg.to_node
            for side, w in (("a", 0.85), ("b", 0.15)):
                lon, lat = a.lon * w + b.lon * (1 - w), a.lat * w + b.lat * (1 - w)
                cid = f"cam-{n:03d}{side}"
                checkpoints.rows.append((cid, seg.segment_id, seg.district, seg.street,
                                         round(lon, 6), round(lat, 6), seg.direction))
            cams[seg.segment_id] = (f"cam-{n:03d}a", f"cam-{n:03d}b")
        segments = Table("segments", [("segment_id", "str"), ("district", "str"),
                                      ("from_node", "str"), ("to_node", "str"),
                                      ("length_m", "float"), ("free_flow_kmh", "float"),
                                      ("lanes", "int")], "segment_id", ("district",))
        for seg in g.segments.values():
            segments.rows.append((seg.segment_id, seg.district, seg.from_node.node_id,
                                  seg.to_node.node_id, seg.length_m, seg.free_flow_kmh, seg.lanes))
        signals = Table("signals", [("intersection_id", "str"), ("district", "str"),
                                    ("plan_id", "str"), ("cycle_s", "int"), ("phases", "str")],
                        "intersection_id")
        srnd = random.Random(f"{self.seed}-signals")
        for node in g.nodes.values():
            cycle = srnd.choice([60, 90, 120])
            ns = srnd.randint(int(cycle * 0.35), int(cycle * 0.55))
            signals.rows.append((node.node_id, node.district, f"plan-{cycle}",
                                 cycle, f'[{{"phase":"NS","green_s":{ns}}},'
                                        f'{{"phase":"EW","green_s":{cycle - ns - 6}}}]'))
        rnd = random.Random(f"{self.seed}-passages")
        # busier districts attract more trips: weight origins by population
        weights = [POPULATION[node.district] for node in g.nodes.values()]
        keys = list(g.nodes)
        n_trips = int(80_000 * self.scale) + 80
        raw: list[tuple[float, str, str, str, float]] = []
        for t in range(n_trips):
            if t % 5000 == 0:
                self._progress("traffic", t / n_trips)
            p, kind = self.vehicles[rnd.randrange(len(self.vehicles))]
            start = rnd.choices(keys, weights)[0]
            end = rnd.choices(keys, weights)[0]
            if end == start:
                continue
            clock = _departure(rnd)
            for seg in g.route(start, end, rnd):
                busy = rush_factor(clock / 3600) * (1.3 if seg.district in ("xihu", "shangcheng")
                                                    else 1.0)
                speed = seg.free_flow_kmh * max(0.18, 1 - 0.6 * busy + rnd.gauss(0, 0.06))
                if kind in ("bus", "truck"):
                    speed *= 0.85
                travel = seg.length_m / (speed / 3.6)
                cam_a, cam_b = cams[seg.segment_id]
                for t_at, cam in ((clock, cam_a), (clock + travel, cam_b)):
                    spot = round(max(3.0, speed * rnd.uniform(0.85, 1.15)), 1)
                    raw.append((t_at, cam, p, kind, spot))
                clock += travel + rnd.uniform(5, 40)  # the intersection
                if clock >= 86_399:
                    break
        raw = [r for r in raw if r[0] < 86_400]
        raw.sort(key=lambda r: (r[0], r[1], r[2]))
        passages = Table("passages", [("passage_id", "int"), ("camera_id", "str"),
                                      ("plate", "str"), ("vehicle_type", "str"),
                                      ("passed_at", "ts"), ("speed_kmh", "float")],
                         "passage_id", ("camera_id", "plate", "passed_at"))
        passages.rows = [(i + 1, cam, p, kind, _at(ts), spd)
                         for i, (ts, cam, p, kind, spd) in enumerate(raw)]
        self.tables["traffic-police"] = [checkpoints, passages, segments, signals]

    # --- parking companies and on-street parking ------------------------------------------

    def _garages(self, prefix: str, count: int, rnd: random.Random) -> list[dict[str, Any]]:
        nodes = list(self.grid.nodes.values())
        weights = [POPULATION[n.district] * (1.6 if n.district in ("xihu", "shangcheng") else 1)
                   for n in nodes]
        out = []
        for k in range(count):
            node = rnd.choices(nodes, weights)[0]
            out.append({"id": f"{prefix}{k + 1:03d}", "node": node,
                        "lon": round(node.lon + rnd.uniform(-0.003, 0.003), 6),
                        "lat": round(node.lat + rnd.uniform(-0.003, 0.003), 6),
                        "capacity": rnd.choice([80, 120, 150, 200, 260, 320, 400, 600])})
        return out

    def _sessions(self, garage: dict[str, Any], rnd: random.Random
                  ) -> list[tuple[str, datetime, datetime | None]]:
        """Simulate one garage's day; arrivals are turned away while it is full."""
        n = max(6, int(garage["capacity"] * 2.4 * self.scale))
        arrivals = []
        for _ in range(n):
            r = rnd.random()
            h = (rnd.gauss(9.0, 1.2) if r < 0.4 else rnd.gauss(14.5, 2.0) if r < 0.75
                 else rnd.gauss(19.0, 1.5))
            arrivals.append(min(max(h, 0.2), 23.9) * 3600)
        arrivals.sort()
        active: list[float] = []
        out = []
        for t in arrivals:
            active = [x for x in active if x > t]
            if len(active) >= garage["capacity"]:
                continue
            stay = min(rnd.lognormvariate(math.log(2.0 * 3600), 0.7), 14 * 3600)
            leave = t + stay
            active.append(leave)
            p = self.vehicles[rnd.randrange(len(self.vehicles))][0]
            out.append((p, _at(t), _at(leave) if leave < 86_400 else None))
        return out

    def _busy_by_quarter(self, capacity: int, rnd: random.Random, weekend: bool) -> list[int]:
        """Spaces taken at each quarter hour of one earlier day of a garage (the same arrival
        and stay model as :meth:`_sessions`; weekends: fewer cars, around midday)."""
        n = max(6, int(capacity * 2.4 * self.scale * (0.65 if weekend else 1.0)))
        arrivals = []
        for _ in range(n):
            r = rnd.random()
            h = (rnd.gauss(12.5, 2.2) if weekend and r < 0.7 else
                 rnd.gauss(9.0, 1.2) if r < 0.4 else rnd.gauss(14.5, 2.0) if r < 0.75
                 else rnd.gauss(19.0, 1.5))
            arrivals.append(min(max(h, 0.2), 23.9) * 3600)
        arrivals.sort()
        leaving: list[float] = []  # a heap of the departure times of the cars inside
        busy, q = [], 0
        for t in [*arrivals, 86_400.0]:
            while q < 96 and q * 900 < t:
                while leaving and leaving[0] <= q * 900:
                    heapq.heappop(leaving)
                busy.append(len(leaving))
                q += 1
            while leaving and leaving[0] <= t:
                heapq.heappop(leaving)
            if t < 86_400 and len(leaving) < capacity:
                heapq.heappush(leaving, t + min(rnd.lognormvariate(math.log(2.0 * 3600), 0.7),
                                                14 * 3600))
        return busy

    def _parking(self) -> None:
        rnd = random.Random(f"{self.seed}-westlake")
        self._progress("parking", 0.0)
        garages = Table("garages", [("garage_no", "str"), ("name", "str"), ("addr", "str"),
                                    ("district", "str"), ("lng", "float"), ("lat", "float"),
                                    ("total_spaces", "int")], "garage_no", ("district",))
        occupancy = Table("occupancy", [("garage_no", "str"), ("ts", "ts"), ("free", "int")],
                          None, ("garage_no", "ts"))
        sessions = Table("sessions", [("session_id", "int"), ("garage_no", "str"),
                                      ("plate", "str"), ("entered", "ts"), ("left", "ts"),
                                      ("fee_cents", "int")], "session_id", ("plate", "garage_no"))
        zh = {name: z for name, _c, z, _t in DISTRICTS}
        sid = 0
        history: list[dict[str, Any]] = []
        for g in self._garages("WL", 24, rnd):
            node = g["node"]
            sname = dict(STREETS[node.district])[node.street.split("-", 1)[1]]
            garages.rows.append((g["id"], f"西湖停车·{sname}{g['id'][2:]}号库",
                                 f"{zh[node.district]}{sname}{rnd.randint(1, 399)}号",
                                 node.district, g["lon"], g["lat"], g["capacity"]))
            day = self._sessions(g, rnd)
            for p, t_in, t_out in day:
                sid += 1
                fee = None if t_out is None else max(0, math.ceil(
                    (t_out - t_in).total_seconds() / 3600 - 0.25)) * 500
                sessions.rows.append((sid, g["id"], p, t_in, t_out, fee))
            for q in range(96):
                ts = _at(q * 900)
                busy = sum(1 for _p, a, b in day if a <= ts and (b is None or b > ts))
                occupancy.rows.append((g["id"], ts, g["capacity"] - busy))
            history.append(g)
        # four weeks of the garages' counts before the day, for forecasts (their own RNG:
        # the day itself is the same with or without them)
        hrnd = random.Random(f"{self.seed}-westlake-history")
        for g in history:
            for back in range(HISTORY_DAYS, 0, -1):
                weekend = (DAY - timedelta(days=back)).weekday() >= 5
                for q, busy in enumerate(self._busy_by_quarter(g["capacity"], hrnd, weekend)):
                    occupancy.rows.append((g["id"], _at(q * 900) - timedelta(days=back),
                                           g["capacity"] - busy))
        occupancy.rows.sort(key=lambda r: (r[1], r[0]))
        self.tables["parking-westlake"] = [garages, occupancy, sessions]

        rnd = random.Random(f"{self.seed}-qiantang")
        codes = {name: code for name, code, _z, _t in DISTRICTS}
        lots = Table("lots", [("lot_id", "int"), ("lot_name", "str"), ("area_code", "str"),
                              ("x", "float"), ("y", "float"), ("capacity", "int"),
                              ("occupied", "int"), ("updated_at", "ts")], "lot_id", ("area_code",))
        tickets = Table("tickets", [("ticket", "str"), ("lot_id", "int"), ("car_plate", "str"),
                                    ("t_in", "ts"), ("t_out", "ts"), ("amount_yuan", "money")],
                        "ticket", ("car_plate", "lot_id"))
        n = 0
        for k, g in enumerate(self._garages("QT", 18, rnd)):
            lot_id = 1001 + k
            day = self._sessions(g, rnd)
            end = _at(86_399)
            occupied = sum(1 for _p, _a, b in day if b is None)
            lots.rows.append((lot_id, f"钱塘停车场{k + 1:02d}", codes[g["node"].district],
                              g["lon"], g["lat"], g["capacity"], occupied, end))
            for p, t_in, t_out in day:
                n += 1
                amount = None if t_out is None else Decimal(max(0, math.ceil(
                    (t_out - t_in).total_seconds() / 1800 - 0.5)) * 3).quantize(Decimal("0.01"))
                tickets.rows.append((f"QT{n:07d}", lot_id, p[:2] + "-" + p[2:], t_in, t_out,
                                     amount))
        self.tables["parking-qiantang"] = [lots, tickets]

        rnd = random.Random(f"{self.seed}-onstreet")
        spots = Table("spots", [("spot_id", "str"), ("street", "str"), ("district", "str"),
                                ("lon", "float"), ("lat", "float"), ("occupied", "bool"),
                                ("since", "ts")], "spot_id", ("street",))
        payments = Table("payments", [("payment_id", "int"), ("spot_id", "str"), ("plate", "str"),
                                      ("paid_at", "ts"), ("yuan", "money")], "payment_id",
                         ("plate", "spot_id"))
        k = 0
        pid = 0
        for node in self.grid.nodes.values():
            for _ in range(3):
                k += 1
                sid_ = f"SP{k:04d}"
                occupied = rnd.random() < 0.55
                spots.rows.append((sid_, node.street, node.district,
                                   round(node.lon + rnd.uniform(-0.002, 0.002), 6),
                                   round(node.lat + rnd.uniform(-0.002, 0.002), 6), occupied,
                                   _at(rnd.uniform(6, 23.5) * 3600)))
                for _ in range(max(1, int(rnd.randint(2, 14) * self.scale * 5))):
                    pid += 1
                    p = self.vehicles[rnd.randrange(len(self.vehicles))][0]
                    payments.rows.append((pid, sid_, p[:2] + " " + p[2:],
                                          _at(rnd.uniform(7, 22) * 3600),
                                          Decimal(rnd.choice([2, 4, 6, 8, 10])).quantize(
                                              Decimal("0.01"))))
        payments.rows.sort(key=lambda r: (r[3], r[0]))
        self.tables["city-parking"] = [spots, payments]

    # --- health and credit ----------------------------------------------------------------

    def _health(self) -> None:
        self._progress("health", 0.0)
        rnd = random.Random(f"{self.seed}-health")
        hospitals = Table("hospitals", [("hospital_id", "str"), ("name", "str"),
                                        ("district", "str"), ("lon", "float"), ("lat", "float"),
                                        ("beds", "int")], "hospital_id", ("district",))
        nodes = list(self.grid.nodes.values())
        for k, (d, _c, zh, _t) in enumerate(DISTRICTS):
            mine = [n for n in nodes if n.district == d]
            for m, label in enumerate(("第一人民医院", "中医院")):
                node = rnd.choice(mine)
                hospitals.rows.append((f"H{k * 2 + m + 1:02d}", f"{zh}{label}", d,
                                       node.lon, node.lat, rnd.choice([400, 600, 900, 1200, 1800])))
        n_patients = int(20_000 * self.scale) + 40
        patients = [(f"P{rnd.randrange(10**7, 10**8)}", id_number(rnd)) for _ in range(n_patients)]
        visits = Table("visits", [("visit_id", "int"), ("hospital_id", "str"),
                                  ("patient_id", "str"), ("id_number", "str"), ("dept", "str"),
                                  ("arrived_at", "ts"), ("left_at", "ts"), ("fee_yuan", "money"),
                                  ("paid_once", "bool")], "visit_id",
                       ("id_number", "hospital_id", "arrived_at"))
        depts = ["internal", "surgery", "pediatrics", "ent", "dermatology", "emergency",
                 "gynecology", "ophthalmology"]
        rows = []
        for _ in range(int(30_000 * self.scale) + 60):
            h = rnd.choice(hospitals.rows)
            pid, idn = rnd.choice(patients)
            r = rnd.random()
            hour = rnd.gauss(9.0, 1.1) if r < 0.6 else rnd.gauss(14.5, 1.3) if r < 0.9 \
                else rnd.uniform(0, 23.5)
            t_in = min(max(hour, 0.0), 23.5) * 3600
            paid_once = rnd.random() < 0.35
            t_out = t_in + _stay(rnd, paid_once)
            fee = Decimal(round(rnd.lognormvariate(math.log(260), 0.8), 2)).quantize(
                Decimal("0.01"))
            rows.append((h[0], pid, idn, rnd.choice(depts), _at(t_in),
                         _at(t_out) if t_out < 86_400 else None, fee, paid_once))
        rows.sort(key=lambda r: r[4])
        visits.rows = [(i + 1, *r) for i, r in enumerate(rows)]
        self.tables["health"] = [hospitals, visits]
        scores = Table("scores", [("id_number", "str"), ("score", "int"), ("limit_yuan", "money"),
                                  ("updated_at", "ts")], "id_number")
        seen: set[str] = set()
        for _pid, idn in patients + [(None, id_number(rnd)) for _ in range(n_patients // 4)]:
            if idn in seen or rnd.random() < 0.1:  # not everyone has a credit record
                continue
            seen.add(idn)
            score = int(min(950, max(350, rnd.gauss(680, 90))))
            limit = Decimal(max(0, (score - 550) * 40)).quantize(Decimal("0.01"))
            scores.rows.append((idn, score, limit, _at(rnd.uniform(0, 86_000)) - timedelta(
                days=rnd.randrange(0, 60))))
        self.tables["credit-bureau"] = [scores]
        self._registry([idn for _pid, idn in patients])

    def resident(self) -> dict[str, Any]:
        """A demo resident who owns a vehicle and visited a hospital: their id number and
        plates (``zhongshu demo`` prints a citizen token for them)."""
        rows = next(t for t in self.tables["traffic-police"] if t.name == "vehicles").rows
        patients = {r[3] for r in next(t for t in self.tables["health"]
                                       if t.name == "visits").rows}
        idn = next(r[1] for r in rows if r[1] in patients)
        return {"id_number": idn, "plates": sorted(r[0] for r in rows if r[1] == idn)}

    def _registry(self, patients: list[str]) -> None:
        """The traffic police's vehicle registry: who owns which plate. Owners are residents,
        half of them patients of the hospitals (so a driver may also be a patient); some own
        two vehicles. Its own random stream: the other tables do not change with it."""
        rnd = random.Random(f"{self.seed}-registry")
        residents = sorted(set(patients))
        vehicles = Table("vehicles", [("plate", "str"), ("owner_id_number", "str"),
                                      ("vehicle_type", "str"), ("registered", "ts")], "plate",
                         ("owner_id_number",))
        owner = None
        for i, (p, kind) in enumerate(self.vehicles):
            if owner is None or rnd.random() > 0.15:  # 15%: the same owner's second vehicle
                owner = residents[i % len(residents)] if i % 2 == 0 and residents \
                    else id_number(rnd)
            vehicles.rows.append((p, owner, kind, _at(rnd.uniform(0, 86_000)) - timedelta(
                days=rnd.randrange(30, 3650))))
        self.tables["traffic-police"].append(vehicles)

    # --- parks and civil affairs ----------------------------------------------------------

    def _parks_and_civil(self) -> None:
        self._progress("parks", 0.0)
        rnd = random.Random(f"{self.seed}-trees")
        species = [("camphor", 30), ("ginkgo", 12), ("osmanthus", 18), ("plane", 10),
                   ("metasequoia", 8), ("cherry", 7), ("willow", 9), ("magnolia", 6)]
        trees = Table("trees", [("tree_id", "str"), ("species", "str"), ("district", "str"),
                                ("street", "str"), ("lon", "float"), ("lat", "float"),
                                ("planted_year", "int"), ("girth_cm", "float"), ("health", "str")],
                      "tree_id")
        nodes = list(self.grid.nodes.values())
        weights = [3 if n.district in ("xihu", "binjiang") else 1 for n in nodes]
        names, sw = zip(*species, strict=True)
        for k in range(int(50_000 * self.scale) + 100):
            node = rnd.choices(nodes, weights)[0]
            year = rnd.randint(1955, 2024)
            girth = round(max(8.0, (2026 - year) * rnd.uniform(2.0, 3.6)), 1)
            trees.rows.append((f"T{k + 1:06d}", rnd.choices(names, sw)[0], node.district,
                               node.street, round(node.lon + rnd.uniform(-0.005, 0.005), 6),
                               round(node.lat + rnd.uniform(-0.004, 0.004), 6), year, girth,
                               rnd.choices(["good", "fair", "poor"], [78, 17, 5])[0]))
        self.tables["parks"] = [trees]
        districts = Table("districts", [("district", "str"), ("code", "str"), ("name", "str"),
                                        ("name_zh", "str"), ("population", "int"),
                                        ("area_km2", "float")], "district")
        streets = Table("streets", [("street", "str"), ("district", "str"), ("name", "str"),
                                    ("name_zh", "str"), ("population", "int")], "street")
        for name, code, zh, title in DISTRICTS:
            districts.rows.append((name, code, title, zh, POPULATION[name],
                                   round(rnd.uniform(80, 1200), 1)))
            for sname, szh in STREETS[name]:
                streets.rows.append((f"{name}-{sname}", name, sname.capitalize(), szh,
                                     POPULATION[name] // 4 + rnd.randint(-20_000, 20_000)))
        self.tables["civil-affairs"] = [districts, streets]
        self._progress("done", 1.0)
