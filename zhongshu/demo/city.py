"""Write the demo city folder: configuration, member files, data and polygons.

``build_demo_city(dir, seed, scale, engines)`` is what ``zhongshu demo`` and the tests' fixtures
call. With ``engines="real"`` the PostgreSQL and MariaDB members are loaded into those servers
(connection from ``ZHONGSHU_PG_*`` / ``ZHONGSHU_MYSQL_*``, defaulting to the local ones).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from zhongshu.demo import idp, writers
from zhongshu.demo.generate import DemoCity, Table
from zhongshu.demo.geography import DISTRICTS, STREETS, geojson, street_code
from zhongshu.scenarios import discover
from zhongshu.scenarios import signals as signals_scenario
from zhongshu.scenarios.trees import store as trees_store
from zhongshu.scenarios.trees import survey

# member → (kind, title, Chinese title, engine with --engines real)
MEMBERS: dict[str, tuple[str, str, str, str]] = {
    "traffic-police": ("department", "Traffic Police", "交警支队", "postgres"),
    "parking-westlake": ("enterprise", "Westlake Parking Co.", "西湖停车公司", "mysql"),
    "parking-qiantang": ("enterprise", "Qiantang Parking Co.", "钱塘停车公司", "postgres"),
    "city-parking": ("department", "City On-street Parking", "城市停车管理", "sqlite"),
    "health": ("department", "Health Commission", "卫健委", "postgres"),
    "credit-bureau": ("enterprise", "Credit Bureau", "征信机构", "mysql"),
    "parks": ("department", "Parks and Greening", "园林绿化局", "parquet"),
    "civil-affairs": ("department", "Civil Affairs", "民政局", "csv"),
}
CONSUMERS: dict[str, tuple[str, str, list[str]]] = {
    "cockpit-city": ("cockpit", "City digital cockpit", []),
    "cockpit-xihu": ("cockpit", "Xihu district cockpit", []),
    "app-parking": ("scenario", "Convenient parking", []),
    "app-medical": ("scenario", "Pay-once medical", []),
    "app-traffic": ("scenario", "Traffic management", []),
    "app-trees": ("scenario", "Count the trees", []),
    "stats-bureau": ("consumer", "Statistics Bureau", []),
    "auditor": ("auditor", "City auditor", ["auditor"]),
    # the data bureau's staff, who run the hub: its health in detail, no data
    "data-bureau": ("department", "Data Resources Bureau (hub operators)", ["operator"]),
    "outsider": ("enterprise", "Some company without grants", []),
    # callers of the scenarios: the operators' exit gates (leave first, pay later) and the
    # hospitals' systems (pay-once eligibility), one member per hospital of health.hospitals
    "gate-westlake": ("consumer", "Westlake Parking exit gates", ["exit-gate"]),
    "gate-qiantang": ("consumer", "Qiantang Parking exit gates", ["exit-gate"]),
    **{f"hospital-h{n:02d}": ("consumer", f"Hospital H{n:02d}", ["hospital"])
       for n in range(1, 2 * len(DISTRICTS) + 1)},
}
# who may call which service of each scenario (``[[callers]]`` of its member's file): the
# cockpits the read-only views, the named callers the services that act for a person
CALLERS: dict[str, list[dict[str, Any]]] = {
    "app-parking": [
        {"services": ["garages", "nearest", "ngsi-ld", "settlement"], "kinds": ["cockpit"]},
        {"services": ["garages", "nearest", "ngsi-ld", "sessions"],
         "members": ["gate-westlake", "gate-qiantang"], "rate_limit": 120},
        # a driver signed in with the city's identity provider: their own stays only
        {"services": ["sessions"], "people": True, "rate_limit": 30},
    ],
    "app-medical": [
        {"services": ["eligibility"], "roles": ["hospital"], "rate_limit": 60},
        # a patient asking about themselves, once they consented
        {"services": ["eligibility"], "people": True, "consent": True, "rate_limit": 30},
        {"services": ["report"], "kinds": ["cockpit"]},
    ],
    "app-trees": [
        {"services": ["publish", "surveys", "counts", "density", "changes"],
         "members": ["parks"]},
        {"services": ["surveys", "counts", "density", "changes"], "kinds": ["cockpit"]},
    ],
    "app-traffic": [
        {"services": ["recommend"], "members": ["traffic-police"]},
    ],
}

P, S, INT, PUB = "personal", "sensitive", "internal", "public"

def _derived(member: str, file: str, dataset: dict[str, str], table: str,
             columns: tuple[tuple[str, str], ...], grants: list[dict[str, Any]]
             ) -> dict[str, Any]:
    """A scenario member's part of its file: its own store (``data/<member>/<file>``) as a
    SQLite source and the public dataset (name, title, description) it publishes from
    ``table`` there, by district."""
    source = f"{member}-db"
    return {
        "sources": [{"name": source, "kind": "sqlite", "path": f"data/{member}/{file}"}],
        "datasets": [{**dataset, "source": source, "table": table, "area_column": "district",
                      "columns": [{"name": n, "type": t, "classification": "public"}
                                  for n, t in columns]}],
        "grants": grants}


# scenario members that publish derived datasets from their own store
DERIVED: dict[str, dict[str, Any]] = {
    "app-trees": _derived("app-trees", trees_store.FILE, {
        "name": "trees.density", "title": "Trees per district, per km² and per resident",
        "description": "Derived by the trees scenario (app-trees) from parks.tree_surveys "
                       "and civil.districts, one row per survey and district "
                       "(POST /scenarios/trees/publish)"}, "density", (
            ("survey", "VARCHAR"), ("district", "VARCHAR"), ("name_zh", "VARCHAR"),
            ("trees", "BIGINT"), ("population", "BIGINT"), ("area_km2", "DOUBLE"),
            ("trees_per_km2", "DOUBLE"), ("trees_per_1000_residents", "DOUBLE"),
            ("computed_at", "VARCHAR")),
        [{"consumer": "cockpit-city", "purposes": ["city-operations"],
          "datasets": ["trees.density"]}]),
    "app-traffic": _derived("app-traffic", signals_scenario.FILE, {
        "name": "traffic_signals.recommendations",
        "title": "Recommended signal plans per intersection",
        "description": "Derived by the traffic-signals scenario (app-traffic) from the live "
                       "traffic.segment_flow (or the recorded day's traffic.passages and "
                       "traffic.checkpoints), traffic.segments and traffic.signals: Webster's "
                       "cycle and green split (POST /scenarios/traffic-signals/recommend)"},
        "recommendations", (
            ("intersection_id", "VARCHAR"), ("district", "VARCHAR"), ("window_end", "VARCHAR"),
            ("flow_ns_vph", "DOUBLE"), ("flow_ew_vph", "DOUBLE"), ("cycle_s", "DOUBLE"),
            ("green_ns_s", "DOUBLE"), ("green_ew_s", "DOUBLE"), ("current_cycle_s", "DOUBLE"),
            ("computed_at", "VARCHAR")),
        [{"consumer": "cockpit-city", "purposes": ["city-operations"],
          "datasets": ["traffic_signals.recommendations"]},
         {"consumer": "cockpit-xihu", "purposes": ["district-operations"],
          "datasets": ["traffic_signals.recommendations"], "row_scope": "district = 'xihu'"}]),
}

# a tree, in the inventory and in every survey
TREES: list[tuple[Any, ...]] = [
    ("tree_id", "VARCHAR", PUB, "tree"),
    ("species", "VARCHAR", PUB, "species (English)"),
    ("district", "VARCHAR", PUB, "district short name"),
    ("street", "VARCHAR", PUB, "street (district-name)"),
    ("lon", "DOUBLE", PUB, "longitude"),
    ("lat", "DOUBLE", PUB, "latitude"),
    ("planted_year", "BIGINT", PUB, "year planted"),
    ("girth_cm", "DOUBLE", PUB, "trunk girth in cm"),
    ("health", "VARCHAR", PUB, "good, fair or poor")]

# dataset name → (member, table, title, area column, listed, [(column, type, class, desc, expr)])
DATASETS: dict[str, tuple[str, str, str, str | None, bool, list[tuple[Any, ...]]]] = {
    "traffic.checkpoints": ("traffic-police", "checkpoints", "Checkpoint cameras", "district",
                            True, [
        ("camera_id", "VARCHAR", PUB, "camera identifier"),
        ("segment_id", "VARCHAR", PUB, "road segment the camera watches"),
        ("district", "VARCHAR", PUB, "district short name"),
        ("street", "VARCHAR", PUB, "street (district-name)"),
        ("lon", "DOUBLE", PUB, "longitude (WGS84)"),
        ("lat", "DOUBLE", PUB, "latitude (WGS84)"),
        ("direction", "VARCHAR", PUB, "direction of travel watched: N, S, E or W")]),
    "traffic.passages": ("traffic-police", "passages", "Vehicle passages at checkpoints", None,
                         True, [
        ("passage_id", "BIGINT", INT, "passage identifier"),
        ("camera_id", "VARCHAR", INT, "camera that saw the vehicle"),
        ("plate", "VARCHAR", P, "licence plate, canonical form 浙A12345"),
        ("vehicle_type", "VARCHAR", INT, "car, taxi, bus, truck or van"),
        ("passed_at", "TIMESTAMP", INT, "time of passage (local time)"),
        ("speed_kmh", "DOUBLE", INT, "spot speed in km/h")]),
    "traffic.segments": ("traffic-police", "segments", "Road segments", "district", True, [
        ("segment_id", "VARCHAR", PUB, "directed segment between two intersections"),
        ("district", "VARCHAR", PUB, "district short name"),
        ("from_node", "VARCHAR", PUB, "intersection the segment leaves"),
        ("to_node", "VARCHAR", PUB, "intersection the segment enters"),
        ("length_m", "DOUBLE", PUB, "length in metres"),
        ("free_flow_kmh", "DOUBLE", PUB, "free-flow speed in km/h"),
        ("lanes", "BIGINT", PUB, "number of lanes")]),
    "traffic.signals": ("traffic-police", "signals", "Signal plans", "district", True, [
        ("intersection_id", "VARCHAR", INT, "intersection"),
        ("district", "VARCHAR", INT, "district short name"),
        ("plan_id", "VARCHAR", INT, "current signal plan"),
        ("cycle_s", "BIGINT", INT, "cycle length in seconds"),
        ("phases", "VARCHAR", INT, "phases as JSON")]),
    "parking_westlake.garages": ("parking-westlake", "garages", "Westlake garages", "district",
                                 True, [
        ("garage_no", "VARCHAR", PUB, "garage number"),
        ("name", "VARCHAR", PUB, "garage name"),
        ("addr", "VARCHAR", PUB, "address"),
        ("district", "VARCHAR", PUB, "district short name"),
        ("lng", "DOUBLE", PUB, "longitude"),
        ("lat", "DOUBLE", PUB, "latitude"),
        ("total_spaces", "BIGINT", PUB, "spaces in total")]),
    "parking_westlake.occupancy": ("parking-westlake", "occupancy", "Westlake free spaces",
                                   None, True, [
        ("garage_no", "VARCHAR", PUB, "garage number"),
        ("ts", "TIMESTAMP", PUB, "time of the count"),
        ("free", "BIGINT", PUB, "free spaces")]),
    "parking_westlake.sessions": ("parking-westlake", "sessions", "Westlake parking sessions",
                                  None, True, [
        ("session_id", "BIGINT", INT, "session"),
        ("garage_no", "VARCHAR", INT, "garage number"),
        ("plate", "VARCHAR", P, "licence plate, stored as 浙A12345"),
        ("entered", "TIMESTAMP", INT, "entry time"),
        ("left", "TIMESTAMP", INT, "exit time (null while parked)"),
        ("fee_cents", "BIGINT", INT, "fee in cents (null while parked)")]),
    "parking_qiantang.lots": ("parking-qiantang", "lots", "Qiantang parking lots", None, True, [
        ("lot_id", "BIGINT", PUB, "lot identifier"),
        ("lot_name", "VARCHAR", PUB, "lot name"),
        ("area_code", "VARCHAR", PUB, "administrative code of the district"),
        ("x", "DOUBLE", PUB, "longitude"),
        ("y", "DOUBLE", PUB, "latitude"),
        ("capacity", "BIGINT", PUB, "spaces in total"),
        ("occupied", "BIGINT", PUB, "spaces occupied now"),
        ("updated_at", "TIMESTAMP", PUB, "time of the count")]),
    "parking_qiantang.tickets": ("parking-qiantang", "tickets", "Qiantang parking tickets",
                                 None, True, [
        ("ticket", "VARCHAR", INT, "ticket number"),
        ("lot_id", "BIGINT", INT, "lot identifier"),
        ("car_plate", "VARCHAR", P, "licence plate, normalised from 浙A-12345 to 浙A12345",
         "replace(car_plate, '-', '')"),
        ("t_in", "TIMESTAMP", INT, "entry time"),
        ("t_out", "TIMESTAMP", INT, "exit time (null while parked)"),
        ("amount_yuan", "DECIMAL(10,2)", INT, "amount in yuan")]),
    "onstreet.spots": ("city-parking", "spots", "On-street parking spots", "district", True, [
        ("spot_id", "VARCHAR", PUB, "spot"),
        ("street", "VARCHAR", PUB, "street (district-name)"),
        ("district", "VARCHAR", PUB, "district short name"),
        ("lon", "DOUBLE", PUB, "longitude"),
        ("lat", "DOUBLE", PUB, "latitude"),
        ("occupied", "BOOLEAN", PUB, "occupied now"),
        ("since", "TIMESTAMP", PUB, "time of the last change")]),
    "onstreet.payments": ("city-parking", "payments", "On-street payments", None, True, [
        ("spot_id", "VARCHAR", INT, "spot"),
        ("plate", "VARCHAR", P, "licence plate, normalised from 浙A 12345 to 浙A12345",
         "replace(plate, ' ', '')"),
        ("paid_at", "TIMESTAMP", INT, "time of payment"),
        ("yuan", "DECIMAL(10,2)", INT, "amount in yuan")]),
    "health.hospitals": ("health", "hospitals", "Hospitals", "district", True, [
        ("hospital_id", "VARCHAR", PUB, "hospital"),
        ("name", "VARCHAR", PUB, "name"),
        ("district", "VARCHAR", PUB, "district short name"),
        ("lon", "DOUBLE", PUB, "longitude"),
        ("lat", "DOUBLE", PUB, "latitude"),
        ("beds", "BIGINT", PUB, "beds")]),
    "health.visits": ("health", "visits", "Hospital visits", None, True, [
        ("visit_id", "BIGINT", INT, "visit"),
        ("hospital_id", "VARCHAR", INT, "hospital"),
        ("patient_id", "VARCHAR", P, "patient number of the hospital"),
        ("id_number", "VARCHAR", S, "resident id number"),
        ("dept", "VARCHAR", INT, "department"),
        ("arrived_at", "TIMESTAMP", INT, "arrival"),
        ("left_at", "TIMESTAMP", INT, "departure"),
        ("fee_yuan", "DECIMAL(10,2)", INT, "total fee in yuan"),
        ("paid_once", "BOOLEAN", INT, "paid once at the end (credit-based)")]),
    "credit.scores": ("credit-bureau", "scores", "Credit scores", None, False, [
        ("id_number", "VARCHAR", S, "resident id number"),
        ("score", "BIGINT", INT, "credit score 350–950"),
        ("limit_yuan", "DECIMAL(10,2)", INT, "credit limit for pay-later services"),
        ("updated_at", "TIMESTAMP", INT, "last update")]),
    "traffic.vehicles": ("traffic-police", "vehicles", "Vehicle registry", None, False, [
        ("plate", "VARCHAR", P, "licence plate, canonical form 浙A12345"),
        ("owner_id_number", "VARCHAR", S, "the registered owner's resident id number"),
        ("vehicle_type", "VARCHAR", INT, "car, taxi, bus, truck or van"),
        ("registered", "TIMESTAMP", INT, "time of registration")]),
    "parks.trees": ("parks", "trees", "Street and park trees", "district", True, TREES),
    "parks.tree_surveys": ("parks", "surveys", "Tree surveys", "district", True, [
        ("survey", "VARCHAR", PUB, "survey name (imported with `zhongshu trees import`)"),
        *TREES]),
    "civil.districts": ("civil-affairs", "districts", "Districts", "district", True, [
        ("district", "VARCHAR", PUB, "short name"),
        ("code", "VARCHAR", PUB, "administrative code", "CAST(code AS VARCHAR)"),
        ("name", "VARCHAR", PUB, "English name"),
        ("name_zh", "VARCHAR", PUB, "Chinese name"),
        ("population", "BIGINT", PUB, "residents"),
        ("area_km2", "DOUBLE", PUB, "area in km²")]),
    "civil.streets": ("civil-affairs", "streets", "Streets", "district", True, [
        ("street", "VARCHAR", PUB, "street (district-name)"),
        ("district", "VARCHAR", PUB, "district short name"),
        ("name", "VARCHAR", PUB, "English name"),
        ("name_zh", "VARCHAR", PUB, "Chinese name"),
        ("population", "BIGINT", PUB, "residents")]),
}


# where the cockpit reads residents and area (``[population]`` of cockpit.toml)
COCKPIT: dict[str, Any] = {"population": {
    "districts": {"dataset": "civil.districts", "area": "district", "residents": "population",
                  "area_km2": "area_km2"},
    "streets": {"dataset": "civil.streets", "area": "street", "residents": "population"}}}

XIHU = "district = 'xihu'"
SURVEY = "2026"  # the name of the demo's own tree survey (the inventory in parks.trees)
# owner → grants, as in DEMO_CITY.md (columns default to the public and internal ones)
GRANTS: dict[str, list[dict[str, Any]]] = {
    "traffic-police": [
        {"consumer": "cockpit-xihu", "purposes": ["district-operations"],
         "datasets": ["traffic.checkpoints", "traffic.passages", "traffic.segments",
                      "traffic.signals"],
         "row_scope": {"traffic.checkpoints": XIHU, "traffic.segments": XIHU,
                       "traffic.signals": XIHU,
                       "traffic.passages": "camera_id IN (SELECT camera_id FROM "
                                           "traffic.checkpoints WHERE district = 'xihu')"}},
        {"consumer": "app-parking", "purposes": ["convenient-parking"],
         "datasets": ["traffic.segments"]},
        {"consumer": "app-traffic", "purposes": ["traffic-management"],
         "datasets": ["traffic.checkpoints", "traffic.segments", "traffic.signals"]},
        {"consumer": "app-traffic", "purposes": ["traffic-management"],
         "datasets": ["traffic.passages"],
         "columns": ["passage_id", "camera_id", "plate", "vehicle_type", "passed_at",
                     "speed_kmh"],
         "masking": {"plate": {"kind": "pseudonym", "rotate": "day", "normalise": "plate"}}},
    ],
    "parking-westlake": [
        {"consumer": "cockpit-xihu", "purposes": ["district-operations"],
         "datasets": ["parking_westlake.garages", "parking_westlake.occupancy",
                      "parking_westlake.sessions"],
         "row_scope": {"parking_westlake.garages": XIHU,
                       "parking_westlake.occupancy": "garage_no IN (SELECT garage_no FROM "
                       "parking_westlake.garages WHERE district = 'xihu')",
                       "parking_westlake.sessions": "garage_no IN (SELECT garage_no FROM "
                       "parking_westlake.garages WHERE district = 'xihu')"}},
        {"consumer": "app-parking", "purposes": ["convenient-parking"],
         "datasets": ["parking_westlake.garages", "parking_westlake.occupancy"]},
        {"consumer": "app-parking", "purposes": ["convenient-parking"],
         "datasets": ["parking_westlake.sessions"],
         "columns": ["session_id", "garage_no", "plate", "entered", "left", "fee_cents"],
         "masking": {"plate": {"kind": "pseudonym", "normalise": "plate"}}, "rate_limit": 600,
         "lookups_per_day": 100},
    ],
    "parking-qiantang": [
        {"consumer": "cockpit-xihu", "purposes": ["district-operations"],
         "datasets": ["parking_qiantang.lots", "parking_qiantang.tickets"],
         "row_scope": {"parking_qiantang.lots": "area_code = '330106'",
                       "parking_qiantang.tickets": "lot_id IN (SELECT lot_id FROM "
                       "parking_qiantang.lots WHERE area_code = '330106')"}},
        {"consumer": "app-parking", "purposes": ["convenient-parking"],
         "datasets": ["parking_qiantang.lots"]},
        {"consumer": "app-parking", "purposes": ["convenient-parking"],
         "datasets": ["parking_qiantang.tickets"],
         "columns": ["ticket", "lot_id", "car_plate", "t_in", "t_out", "amount_yuan"],
         "masking": {"car_plate": {"kind": "pseudonym", "normalise": "plate"}},
         "rate_limit": 600},
    ],
    "city-parking": [
        {"consumer": "cockpit-xihu", "purposes": ["district-operations"],
         "datasets": ["onstreet.spots", "onstreet.payments"],
         "row_scope": {"onstreet.spots": XIHU,
                       "onstreet.payments": "spot_id IN (SELECT spot_id FROM onstreet.spots "
                                            "WHERE district = 'xihu')"}},
        {"consumer": "app-parking", "purposes": ["convenient-parking"],
         "datasets": ["onstreet.spots"]},
        {"consumer": "app-parking", "purposes": ["convenient-parking"],
         "datasets": ["onstreet.payments"], "columns": ["spot_id", "plate", "paid_at", "yuan"],
         "masking": {"plate": {"kind": "pseudonym", "normalise": "plate"}}, "rate_limit": 600},
    ],
    "health": [
        {"consumer": "app-medical", "purposes": ["pay-once-medical"],
         "datasets": ["health.hospitals"]},
        {"consumer": "app-medical", "purposes": ["pay-once-medical"],
         "datasets": ["health.visits"],
         "columns": ["visit_id", "hospital_id", "id_number", "dept", "arrived_at", "left_at",
                     "fee_yuan", "paid_once"],
         "masking": {"id_number": {"kind": "pseudonym", "normalise": "id_number"}},
         "rate_limit": 600, "lookups_per_day": 1000},
        # an aggregate dataset: counts and fees by hospital and department (a hospital's
        # district is public in health.hospitals), over at least 10 patients per cell
        {"consumer": "stats-bureau", "purposes": ["research"], "datasets": ["health.visits"],
         "columns": ["hospital_id", "dept", "fee_yuan"],
         "dimensions": ["hospital_id", "dept"], "subject": "patient_id",
         "masking": {"fee_yuan": {"kind": "aggregate_only", "k": 10, "clip": [0, 5000]}}},
    ],
    "credit-bureau": [
        {"consumer": "app-medical", "purposes": ["pay-once-medical"],
         "datasets": ["credit.scores"],
         "columns": ["id_number", "score", "limit_yuan", "updated_at"],
         "masking": {"id_number": {"kind": "pseudonym", "normalise": "id_number"}},
         "rate_limit": 600, "lookups_per_day": 1000},
    ],
    "parks": [
        {"consumer": "cockpit-xihu", "purposes": ["district-operations"],
         "datasets": ["parks.trees"], "row_scope": XIHU},
        {"consumer": "app-trees", "purposes": ["count-trees"],
         "datasets": ["parks.trees", "parks.tree_surveys"]},
    ],
    "civil-affairs": [
        {"consumer": "cockpit-xihu", "purposes": ["district-operations"],
         "datasets": ["civil.districts", "civil.streets"], "row_scope": XIHU},
        {"consumer": "app-trees", "purposes": ["count-trees"],
         "datasets": ["civil.districts", "civil.streets"]},
    ],
}


def demo_grants(member: str) -> list[dict[str, Any]]:
    """The grants ``member`` declares in the demo city: its own list, plus every listed
    dataset to ``cockpit-city`` for city operations."""
    listed = [name for name, spec in DATASETS.items() if spec[0] == member and spec[4]]
    out = [{"consumer": "cockpit-city", "purposes": ["city-operations"], "datasets": listed}] \
        if listed else []
    return out + GRANTS.get(member, [])


@dataclass(frozen=True)
class ServerSettings:
    """Where ``--engines real`` puts data: the local servers unless the environment says else."""

    pg: dict[str, Any]
    mysql: dict[str, Any]
    prefix: str

    @classmethod
    def from_env(cls, prefix: str | None = None) -> ServerSettings:
        e = os.environ.get
        pg = {"host": e("ZHONGSHU_PG_HOST", "127.0.0.1"),
              "port": int(e("ZHONGSHU_PG_PORT", "5432")), "user": e("ZHONGSHU_PG_USER", "postgres")}
        if e("ZHONGSHU_PG_PASSWORD"):
            pg["password"] = e("ZHONGSHU_PG_PASSWORD")
        my = {"host": e("ZHONGSHU_MYSQL_HOST", "127.0.0.1"),
              "port": int(e("ZHONGSHU_MYSQL_PORT", "3306")),
              "user": e("ZHONGSHU_MYSQL_USER", "root")}
        if e("ZHONGSHU_MYSQL_PASSWORD"):
            my["password"] = e("ZHONGSHU_MYSQL_PASSWORD")
        if prefix is None:
            prefix = e("ZHONGSHU_DEMO_DB_PREFIX", "zs_demo_")
        return cls(pg, my, prefix)

    def database(self, member: str) -> str:
        return self.prefix + member.replace("-", "_")


def source_name(member: str) -> str:
    """Name of a demo member's source."""
    return f"{member}-db"


def build_demo_city(root: Path, seed: int = 42, scale: float = 0.01, engines: str = "embedded",
                    servers: ServerSettings | None = None,
                    progress: Callable[[str, float], None] | None = None,
                    overrides: dict[str, str] | None = None) -> Path:
    """Generate the demo city into ``root`` and return it.

    Args:
        engines: ``embedded`` (SQLite, Parquet, CSV files) or ``real`` (PostgreSQL and MariaDB
            for the members marked so in DEMO_CITY.md).
        overrides: member → engine (``sqlite``, ``postgres``, ``mysql``…), e.g. to put the
            traffic police on MariaDB for a benchmark.
    """
    if engines not in ("embedded", "real"):
        raise ValueError("engines must be `embedded` or `real`")
    servers = servers or ServerSettings.from_env()
    root.mkdir(parents=True, exist_ok=True)
    (root / "members").mkdir(exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    (root / "geo").mkdir(exist_ok=True)
    city = DemoCity(seed, scale, progress=progress)
    secrets: dict[str, str] = {}
    for member, (kind, title, title_zh, real_engine) in MEMBERS.items():
        engine = real_engine if engines == "real" else (
            real_engine if real_engine in ("parquet", "csv") else "sqlite")
        engine = (overrides or {}).get(member, engine)
        if progress:
            progress(f"write {member}", 0.0)
        source = _write_source(root, member, engine, city.tables[member], servers, secrets)
        if member == "parks":  # the inventory is also the first survey
            trees = next(t for t in city.tables[member] if t.name == "trees")
            survey.write(root / source["path"] / "surveys", SURVEY, [dict(zip(
                [c for c, _ in trees.columns], r, strict=True)) for r in trees.rows])
        datasets = [_dataset(name, spec, engine) for name, spec in DATASETS.items()
                    if spec[0] == member]
        doc = {"member": {"name": member, "kind": kind, "title": title, "title_zh": title_zh},
               "sources": [source], "datasets": datasets, "grants": demo_grants(member)}
        _write_toml(root / "members" / f"{member}.toml", doc,
                    f"Member `{member}` ({title_zh}): its source and the datasets it offers.")
    for member, (kind, title, roles) in CONSUMERS.items():
        doc = {"member": {"name": member, "kind": kind, "title": title, "roles": roles},
               **DERIVED.get(member, {})}
        if member in CALLERS:
            doc["callers"] = CALLERS[member]
        _write_toml(root / "members" / f"{member}.toml", doc, f"Member `{member}`.")
    for scenario in discover():  # the stores its members declare, empty until first written
        if scenario.store is not None and scenario.member in CONSUMERS:
            scenario.store(root / "data" / scenario.member)
    city_doc = {
        "city": {"name": "demo-city", "title": "Demo City", "name_zh": "示范市", "code": "330100"},
        "hub": {"origin": "hub.demo-city", "row_cap": 10_000},
        "districts": [{"name": n, "code": c, "name_zh": z, "title": t} for n, c, z, t in DISTRICTS],
        "streets": [{"name": f"{n}-{s}", "district": n, "code": street_code(c, q),
                     "name_zh": z, "title": s.capitalize()}
                    for n, c, _, _ in DISTRICTS for q, (s, z) in enumerate(STREETS[n])],
        "people": PEOPLE,
    }
    _write_toml(root / "city.toml", city_doc,
                f"The demo city (seed {seed}, scale {scale}, engines {engines}). "
                "Generated by `zhongshu demo`; see docs/configuration.md.")
    _write_toml(root / "cockpit.toml", COCKPIT,
                "The demo city's cockpit: the default panels, and residents and area read from "
                "the civil affairs' datasets; see docs/cockpit.md.")
    idp.signing_key(root)  # the demo's identity provider (its public keys served by the hub)
    secrets_path = root / "secrets.toml"
    secrets_path.write_text(tomli_w.dumps({"secrets": secrets}), encoding="utf-8")
    secrets_path.chmod(0o600)
    (root / "geo" / "districts.geojson").write_text(json.dumps(geojson("district"),
                                                              ensure_ascii=False))
    (root / "geo" / "streets.geojson").write_text(json.dumps(geojson("street"), ensure_ascii=False))
    (root / "demo.json").write_text(json.dumps({"seed": seed, "scale": scale, "engines": engines,
                                                "db_prefix": servers.prefix,
                                                "resident": city.resident(),
                                                "streets": {d: [s for s, _ in v]
                                                            for d, v in STREETS.items()}}))
    return root


def _write_source(root: Path, member: str, engine: str, tables: list[Table],
                  servers: ServerSettings, secrets: dict[str, str]) -> dict[str, Any]:
    name = source_name(member)
    if engine == "sqlite":
        writers.write_sqlite(root / "data" / f"{member}.sqlite", tables)
        return {"name": name, "kind": "sqlite", "path": f"data/{member}.sqlite"}
    if engine == "parquet":
        writers.write_parquet(root / "data" / member, tables)
        return {"name": name, "kind": "parquet", "path": f"data/{member}"}
    if engine == "csv":
        writers.write_csv(root / "data" / member, tables)
        return {"name": name, "kind": "csv", "path": f"data/{member}"}
    db = servers.database(member)
    conn = servers.pg if engine == "postgres" else servers.mysql
    if engine == "postgres":
        writers.write_postgres(servers.pg, db, tables)
    else:
        writers.write_mysql(servers.mysql, db, tables)
    src: dict[str, Any] = {"name": name, "kind": engine, "host": conn["host"],
                           "port": conn["port"], "database": db, "user": conn["user"]}
    if "password" in conn:
        src["password_secret"] = f"{engine}-password"
        secrets[f"{engine}-password"] = conn["password"]
    return src


# the columns that identify a person, and by what (``policy.subjects`` normalises them)
IDENTIFIES = {
    ("traffic.passages", "plate"): "plate", ("traffic.vehicles", "plate"): "plate",
    ("traffic.vehicles", "owner_id_number"): "id_number",
    ("parking_westlake.sessions", "plate"): "plate",
    ("parking_qiantang.tickets", "car_plate"): "plate", ("onstreet.payments", "plate"): "plate",
    ("health.visits", "id_number"): "id_number", ("credit.scores", "id_number"): "id_number"}

# the demo's identity provider (``demo.idp``): its keys served by the demo hub itself
PEOPLE = {"issuer": "https://id.demo-city.example", "audience": "zhongshu-demo-city",
          "jwks_url": "/demo/idp/jwks.json", "id_claim": "resident_id",
          "algorithms": ["ES256"], "registry": "traffic.vehicles", "registry_plate": "plate",
          "registry_owner": "owner_id_number",
          "exclusions": [{"member": "traffic-police", "purpose": "investigation",
                          "reason": "criminal investigations by the traffic police (Criminal "
                                    "Procedure Law of the PRC, art. 152): not shown while "
                                    "they run"}]}


PARKING_VOCABULARY = "https://smartdatamodels.org/dataModel.Parking/"
# the datasets each owner offers as NGSI-LD entities (Smart Data Models types and attribute
# names; ``zhongshu.config.entity``), served at /ngsi-ld/v1/ under each caller's grants
ENTITIES: dict[str, dict[str, Any]] = {
    "parking_westlake.garages": {
        "type": "OffStreetParking", "vocabulary": PARKING_VOCABULARY,
        "id": "urn:ngsi-ld:OffStreetParking:westlake-{garage_no}",
        "location": {"lon": "lng", "lat": "lat"},
        "attributes": {"name": "name", "totalSpotNumber": "total_spaces",
                       "areaServed": "district"}},
    "parking_qiantang.lots": {
        "type": "OffStreetParking", "vocabulary": PARKING_VOCABULARY,
        "id": "urn:ngsi-ld:OffStreetParking:qiantang-{lot_id}",
        "location": {"lon": "x", "lat": "y"}, "observed_at": "updated_at",
        "attributes": {"name": "lot_name", "totalSpotNumber": "capacity",
                       "occupiedSpotNumber": {"column": "occupied", "observed": True}}},
    "onstreet.spots": {
        "type": "ParkingSpot", "vocabulary": PARKING_VOCABULARY,
        "id": "urn:ngsi-ld:ParkingSpot:onstreet-{spot_id}",
        "location": {"lon": "lon", "lat": "lat"}, "observed_at": "since",
        "attributes": {"status": {"column": "occupied", "observed": True,
                                  "values": {"true": "occupied", "false": "free"}},
                       "areaServed": "district"}},
}


def _dataset(name: str, spec: tuple[Any, ...], engine: str) -> dict[str, Any]:
    member, table, title, area, listed, cols = spec
    out: dict[str, Any] = {"name": name, "title": title, "source": source_name(member),
                           "table": table, "listed": listed}
    if area:
        out["area_column"] = area
    out["columns"] = []
    for c in cols:
        col = {"name": c[0], "type": c[1], "classification": c[2], "description": c[3]}
        if (name, c[0]) in IDENTIFIES:
            col["identifies"] = IDENTIFIES[(name, c[0])]
        if len(c) > 4:
            col["expr"] = c[4]
        elif engine == "sqlite" and c[1] == "BOOLEAN":
            col["expr"] = f"CAST({c[0]} AS BOOLEAN)"  # SQLite keeps booleans as 0/1
        out["columns"].append(col)
    if name in ENTITIES:
        out["entity"] = ENTITIES[name]
    return out


def _write_toml(path: Path, doc: dict[str, Any], comment: str) -> None:
    path.write_text(f"# {comment}\n\n" + tomli_w.dumps(doc), encoding="utf-8")


def drop_real_databases(servers: ServerSettings) -> None:
    """Drop the server databases a ``--engines real`` demo city created."""
    for member in MEMBERS:
        writers.drop_postgres(servers.pg, servers.database(member))
        writers.drop_mysql(servers.mysql, servers.database(member))
