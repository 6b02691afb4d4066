"""The traffic definitions, once for the historical table and once for the live stream.

* **Flow** — vehicles per minute, counted at each segment's counting camera (the first of
  its cameras by ``camera_id``, so a vehicle passing both cameras counts once).
* **Trip** — two consecutive sightings of the same plate, no other sighting between them,
  at the two different cameras of one segment, at most ``MAX_GAP_S`` apart; its travel time
  is the time between them. Trips slower than ``MAX_RATIO`` × or faster than ``MIN_RATIO`` ×
  the free-flow travel time (``length_m / free_flow_kmh``) are outliers and left out.
* **Congestion index** — travel time over free-flow travel time, summed over the trips of
  the window and area: Σ travel time / Σ free-flow time (a segment's is its trips' mean
  ratio weighted by length; a district's weights each segment by the trips it carried).
  Levels, as commonly used by Chinese city-traffic reports (拥堵延时指数):
  smooth < 1.5 ≤ slow < 2 ≤ congested < 4 ≤ jammed.

Each measure exists per segment, and rolled up per street, district and city. Batch: SQL the
owner (or any consumer granted ``traffic.*``) runs through the hub over ``traffic.passages``.
Live: a member-file block declaring the stream, its pairs and its windowed aggregates, which
the stream service folds as events arrive.
"""

from __future__ import annotations

from datetime import datetime

FLOW_WINDOW_S = 60
TRIP_WINDOW_S = 300
MAX_GAP_S = 1800
MIN_RATIO = 0.5
MAX_RATIO = 10.0
LEVELS = ((1.5, "smooth"), (2.0, "slow"), (4.0, "congested"), (float("inf"), "jammed"))
AREAS: dict[str, list[str]] = {
    "segment": ["segment_id", "direction", "district", "street"],
    "street": ["street", "district"],
    "district": ["district"],
    "city": [],
}
FREE_FLOW_S = "length_m / (free_flow_kmh / 3.6)"
COUNTING_CAMERA = "camera_id = min(camera_id) OVER (PARTITION BY segment_id)"


def level_of(index: float) -> str:
    """The congestion level of an index."""
    return next(name for bound, name in LEVELS if index < bound)


def level_sql(index: str) -> str:
    """A SQL CASE giving the level of the index expression ``index``."""
    whens = " ".join(f"WHEN {index} < {bound} THEN '{name}'" for bound, name in LEVELS[:-1])
    return f"CASE WHEN {index} IS NULL THEN NULL {whens} ELSE '{LEVELS[-1][1]}' END"


def dataset(measure: str, area: str) -> str:
    """The live dataset of ``measure`` (flow, travel_times, congestion) at ``area``."""
    if measure == "travel_times":
        return "traffic.travel_times"
    return f"traffic.{'' if area == 'segment' else area + '_'}" + (
        "segment_flow" if measure == "flow" and area == "segment" else measure)


def _range(column: str, lo: datetime, hi: datetime) -> str:
    return f"{column} >= TIMESTAMP '{lo:%Y-%m-%d %H:%M:%S}' AND {column} < " \
           f"TIMESTAMP '{hi:%Y-%m-%d %H:%M:%S}'"


def flow_sql(area: str, lo: datetime, hi: datetime) -> str:
    """Batch flow over ``traffic.passages`` between ``lo`` and ``hi``: the live dataset's
    columns, per minute and ``area``."""
    groups = AREAS[area] + (["vehicle_type"] if area == "segment" else [])
    cols = "".join(f"c.{g}, " if g != "vehicle_type" else "p.vehicle_type, " for g in groups)
    avg = ", avg(p.speed_kmh) AS avg_speed_kmh" if area == "segment" else ""
    return (f"SELECT date_trunc('minute', p.passed_at) AS window_start, {cols}"
            f"count(*) AS vehicles{avg} "
            f"FROM traffic.passages p JOIN (SELECT camera_id, segment_id, direction, district, "
            f"street, {COUNTING_CAMERA} AS counted FROM traffic.checkpoints) c "
            f"ON p.camera_id = c.camera_id WHERE c.counted AND {_range('p.passed_at', lo, hi)} "
            "GROUP BY ALL")


def trips_sql(lo: datetime, hi: datetime) -> str:
    """Batch trips (outliers removed) completed between ``lo`` and ``hi``: segment, street,
    district, direction, vehicle type, ``passed_at`` (the second sighting), ``duration_s``,
    ``free_flow_s``."""
    return f"""WITH s AS (
  SELECT p.plate, p.passed_at, p.camera_id, p.vehicle_type, c.segment_id, c.direction,
         c.district, c.street,
         lag(p.passed_at) OVER w AS prev_at, lag(p.camera_id) OVER w AS prev_camera,
         lag(c.segment_id) OVER w AS prev_segment
  FROM traffic.passages p JOIN traffic.checkpoints c ON p.camera_id = c.camera_id
  WHERE p.passed_at >= TIMESTAMP '{lo:%Y-%m-%d %H:%M:%S}' - INTERVAL {MAX_GAP_S} SECOND
    AND p.passed_at < TIMESTAMP '{hi:%Y-%m-%d %H:%M:%S}'
  WINDOW w AS (PARTITION BY p.plate ORDER BY p.passed_at, p.passage_id)
), t AS (
  SELECT s.segment_id, s.direction, s.district, s.street, s.vehicle_type, s.passed_at,
         date_diff('microsecond', s.prev_at, s.passed_at) / 1e6 AS duration_s,
         g.length_m / (g.free_flow_kmh / 3.6) AS free_flow_s
  FROM s JOIN traffic.segments g ON s.segment_id = g.segment_id
  WHERE s.prev_segment = s.segment_id AND s.prev_camera <> s.camera_id
    AND date_diff('microsecond', s.prev_at, s.passed_at) <= {MAX_GAP_S * 1_000_000}
    AND {_range('s.passed_at', lo, hi)}
)
SELECT * FROM t WHERE duration_s / free_flow_s BETWEEN {MIN_RATIO} AND {MAX_RATIO}"""


def _bucket(column: str, seconds: int) -> str:
    return f"time_bucket(INTERVAL {seconds} SECOND, {column})"


def travel_times_sql(lo: datetime, hi: datetime) -> str:
    """Batch travel times per segment and 5 minutes (the live ``traffic.travel_times``)."""
    return (f"SELECT {_bucket('passed_at', TRIP_WINDOW_S)} AS window_start, "
            f"{', '.join(AREAS['segment'])}, count(*) AS trips, avg(duration_s) AS "
            "avg_travel_s, min(duration_s) AS min_travel_s, max(duration_s) AS max_travel_s, "
            f"max(free_flow_s) AS free_flow_s FROM ({trips_sql(lo, hi)}) GROUP BY ALL")


def congestion_sql(area: str, lo: datetime, hi: datetime) -> str:
    """Batch congestion per ``area`` and 5 minutes (the live congestion datasets)."""
    groups = "".join(f"{g}, " for g in AREAS[area])
    index = "sum(duration_s) / sum(free_flow_s)"
    return (f"SELECT {_bucket('passed_at', TRIP_WINDOW_S)} AS window_start, {groups}"
            "count(*) AS trips, sum(duration_s) AS travel_s, sum(free_flow_s) AS free_flow_s, "
            f"{index} AS congestion_index, {level_sql(index)} AS level "
            f"FROM ({trips_sql(lo, hi)}) GROUP BY ALL")


def live_block(kind: str, topic: str, stream: str = "passages-live", extra: str = "") -> str:
    """The traffic police's live passages stream and every live traffic dataset, as its
    member file declares them; ``extra`` adds keys to the stream (a NATS durable)."""
    flows = "".join(f"""
[[aggregates]]
dataset = "{dataset('flow', area)}"
title = "Vehicles per {area} and minute, live"
stream = "{stream}"
window_s = {FLOW_WINDOW_S}
lateness_s = 120
where = "counted"
group_by = {_toml_list(AREAS[area] + (["vehicle_type"] if area == "segment" else []))}
measures = {{ vehicles = "count(*)"{', avg_speed_kmh = "avg(speed_kmh)"' if area == "segment"
                                     else ""} }}
{'area_column = "district"' if area != "city" else ""}
""" for area in AREAS)
    index = "travel_s / nullif(free_flow_s, 0)"
    congestion = "".join(f"""
[[aggregates]]
dataset = "{dataset('congestion', area)}"
title = "Congestion index per {area} and 5 minutes, live"
stream = "segment-trips"
window_s = {TRIP_WINDOW_S}
lateness_s = {MAX_GAP_S}
group_by = {_toml_list(AREAS[area])}
measures = {{ trips = "count(*)", travel_s = "sum(duration_s)", free_flow_s = "sum(free_flow_s)" }}
derived = [
  {{ name = "congestion_index", type = "DOUBLE", expr = "{index}" }},
  {{ name = "level", type = "VARCHAR", expr = "{level_sql(index)}" }},
]
{'area_column = "district"' if area != "city" else ""}
""" for area in AREAS)
    return f"""
[[streams]]
name = "{stream}"
kind = "{kind}"
topic = "{topic}"
time_column = "passed_at"
{extra}
columns = [
  {{ name = "camera_id", type = "VARCHAR", classification = "internal" }},
  {{ name = "plate", type = "VARCHAR", classification = "personal" }},
  {{ name = "vehicle_type", type = "VARCHAR", classification = "internal" }},
  {{ name = "passed_at", type = "TIMESTAMP", classification = "internal" }},
  {{ name = "speed_kmh", type = "DOUBLE", classification = "internal" }},
]
[[streams.lookups]]
dataset = "traffic.checkpoints"
key = "camera_id"
columns = [
  {{ name = "segment_id", type = "VARCHAR", classification = "public" }},
  {{ name = "direction", type = "VARCHAR", classification = "public" }},
  {{ name = "district", type = "VARCHAR", classification = "public" }},
  {{ name = "street", type = "VARCHAR", classification = "public" }},
  {{ name = "counted", type = "BOOLEAN", expr = "{COUNTING_CAMERA}" }},
]
[[streams.pairs]]
name = "segment-trips"
key = "plate"
same = "segment_id"
differ = "camera_id"
max_gap_s = {MAX_GAP_S}
reference = "free_flow_s"
min_ratio = {MIN_RATIO}
max_ratio = {MAX_RATIO}
[[streams.pairs.lookups]]
dataset = "traffic.segments"
key = "segment_id"
columns = [{{ name = "free_flow_s", type = "DOUBLE", expr = "{FREE_FLOW_S}" }}]
{flows}
[[aggregates]]
dataset = "traffic.travel_times"
title = "Travel time per segment and 5 minutes, live (outliers removed)"
stream = "segment-trips"
window_s = {TRIP_WINDOW_S}
lateness_s = {MAX_GAP_S}
group_by = {_toml_list(AREAS['segment'])}
area_column = "district"
[aggregates.measures]
trips = "count(*)"
avg_travel_s = "avg(duration_s)"
min_travel_s = "min(duration_s)"
max_travel_s = "max(duration_s)"
free_flow_s = "max(free_flow_s)"
{congestion}"""


def live_datasets() -> list[str]:
    """Every live traffic dataset :func:`live_block` declares."""
    return ([dataset("flow", a) for a in AREAS] + ["traffic.travel_times"] +
            [dataset("congestion", a) for a in AREAS])


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"
