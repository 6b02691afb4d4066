"""The demo city, live: the traffic police's checkpoint cameras and the two parking
companies' gate controllers publish on MQTT, as departments would, and the hub folds their
events into windows the cockpits can watch.

``zhongshu demo --live`` declares the streams (once) in the demo city's member files and runs
:class:`Feed`, which replays the generator's day — the same routes, rush hours, speeds and
garage visits as the historical tables — starting at the time of day it is now. Event times
follow the generator's clock, so travel times are the generated ones; ``rate`` sets how
fast that clock runs (at more events a second than the city makes, it runs ahead of the
wall clock)."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from zhongshu.demo.generate import DemoCity
from zhongshu.traffic import counting

log = logging.getLogger("zhongshu.demo.live")
TOPIC = "demo-city/traffic-police/passages"
GATES_TOPIC = "demo-city/parking-westlake/gates"
QIANTANG_TOPIC = "demo-city/parking-qiantang/gates"
_MARK = "# --- live {what} (zhongshu demo --live"
VERSION = "v2) ---"


def _grants(datasets: list[str], xihu: str | dict[str, str] | None, others: str = "") -> str:
    """Grants of live datasets to the cockpits (and ``others``, TOML), as for their tables."""
    def listed(names: list[str]) -> str:
        return "[" + ", ".join(f'"{d}"' for d in names) + "]"
    scope = "" if xihu is None else (
        f"row_scope = {json.dumps(xihu)}" if isinstance(xihu, str) else
        "row_scope = { " + ", ".join(f'"{k}" = {json.dumps(v)}' for k, v in xihu.items()) + " }")
    district = [d for d in datasets if not d.startswith("traffic.city_")]
    return f"""
[[grants]]
consumer = "cockpit-city"
purposes = ["city-operations"]
datasets = {listed(datasets)}

[[grants]]
consumer = "cockpit-xihu"
purposes = ["district-operations"]
datasets = {listed(district)}
{scope}
{others}"""


TRAFFIC = counting.live_block("mqtt", TOPIC) + _grants(
    counting.live_datasets(), "district = 'xihu'", f"""
[[grants]]
consumer = "app-traffic"
purposes = ["traffic-management"]
datasets = {json.dumps(counting.live_datasets())}
""")

WESTLAKE = f"""
[[streams]]
name = "gates-live"
kind = "mqtt"
topic = "{GATES_TOPIC}"
time_column = "at"
columns = [
  {{ name = "garage_no", type = "VARCHAR", classification = "public" }},
  {{ name = "gate", type = "VARCHAR", classification = "public" }},
  {{ name = "at", type = "TIMESTAMP", classification = "public" }},
  {{ name = "free", type = "INTEGER", classification = "public" }},
]

[[aggregates]]
dataset = "parking_westlake.live_free"
title = "Free spaces per garage, live (the latest gate event of each minute)"
stream = "gates-live"
window_s = 60
lateness_s = 120
group_by = ["garage_no"]
measures = {{ free = "last(free)", gate_events = "count(*)" }}
""" + _grants(["parking_westlake.live_free"],
              "garage_no IN (SELECT garage_no FROM parking_westlake.garages "
              "WHERE district = 'xihu')", """
[[grants]]
consumer = "app-parking"
purposes = ["convenient-parking"]
datasets = ["parking_westlake.live_free"]
""")

# Qiantang's controllers speak another dialect: CSV lines `lot_id,IN|OUT,epoch seconds,
# occupied after the event`; the capacity comes from its own lots table.
QIANTANG = f"""
[[streams]]
name = "lot-events-live"
kind = "mqtt"
topic = "{QIANTANG_TOPIC}"
format = "csv"
time_column = "ts"
columns = [
  {{ name = "lot_id", type = "INTEGER", classification = "public" }},
  {{ name = "event", type = "VARCHAR", classification = "public" }},
  {{ name = "ts", type = "DOUBLE", classification = "public" }},
  {{ name = "occupied", type = "INTEGER", classification = "public" }},
]
[[streams.lookups]]
dataset = "parking_qiantang.lots"
key = "lot_id"
columns = [{{ name = "capacity", type = "INTEGER", classification = "public" }}]

[[aggregates]]
dataset = "parking_qiantang.live_free"
title = "Free spaces per lot, live (the latest gate event of each minute)"
stream = "lot-events-live"
window_s = 60
lateness_s = 120
group_by = ["lot_id"]
measures = {{ occupied = "last(occupied)", capacity = "last(capacity)", gate_events = "count(*)" }}
[[aggregates.derived]]
name = "free"
type = "INTEGER"
classification = "public"
expr = "greatest(capacity - occupied, 0)"
""" + _grants(["parking_qiantang.live_free"],
              "lot_id IN (SELECT lot_id FROM parking_qiantang.lots WHERE area_code = '330106')",
              """
[[grants]]
consumer = "app-parking"
purposes = ["convenient-parking"]
datasets = ["parking_qiantang.live_free"]
""")
BLOCKS = (("traffic-police", "traffic", TRAFFIC), ("parking-westlake", "gate events", WESTLAKE),
          ("parking-qiantang", "gate events", QIANTANG))


def declare(city_dir: Path) -> bool:
    """Add the live streams to the demo city's traffic police and parking companies (once;
    an older version of the block is replaced); whether anything changed."""
    changed = False
    for member, what, text in BLOCKS:
        path = city_dir / "members" / f"{member}.toml"
        old = path.read_text(encoding="utf-8")
        mark = _MARK.format(what=what)
        if mark + ", " + VERSION in old:
            continue
        cut = old.find("# --- live ")  # an older block, always at the end
        kept = old if cut < 0 else old[:cut].rstrip("\n") + "\n"
        path.write_text(f"{kept}\n{mark}, {VERSION}\n{text}", encoding="utf-8")
        changed = True
    return changed


class Feed:
    """Replays the demo generator's day from the current time of day — passages at ``rate``
    a second, and the gate events of the same stretch of the day — on an MQTT broker (the
    departments' side of the streams)."""

    def __init__(self, seed: int, scale: float, rate: float, host: str = "127.0.0.1",
                 port: int = 1883) -> None:
        self.rate = rate
        city = DemoCity(seed=seed, scale=scale)
        rows = next(t for t in city.tables["traffic-police"] if t.name == "passages").rows
        day0 = rows[0][4].replace(hour=0, minute=0, second=0, microsecond=0)
        # (seconds into the day, camera, plate, type, speed)
        self.passages = [((r[4] - day0).total_seconds(), r[1], r[2], r[3], r[5]) for r in rows]
        self.westlake = _westlake_gates(city, day0)
        self.qiantang = _qiantang_gates(city, day0)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.host, self.port = host, port
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-feed", daemon=True)

    def start(self) -> None:
        """Connect and publish in the background."""
        self.client.connect_async(self.host, self.port)
        self.client.loop_start()
        self._thread.start()

    def _run(self) -> None:
        now = datetime.now(UTC)
        base = now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        into = now.timestamp() - base
        n = len(self.passages)
        i = next((k for k, p in enumerate(self.passages) if p[0] >= into), 0)
        w = next((k for k, g in enumerate(self.westlake) if g[0] >= into), 0)
        q = next((k for k, g in enumerate(self.qiantang) if g[0] >= into), 0)
        tick, t0, due = 0.1, time.monotonic(), 0.0
        while not self._stop.is_set():
            due += self.rate * tick
            batch, clock = [], None
            for _ in range(min(int(due) - self.sent, 10_000)):
                t, cam, plate, kind, speed = self.passages[i % n]
                clock = base + t + 86_400 * (i // n)
                i += 1
                batch.append({"camera_id": cam, "plate": plate, "vehicle_type": kind,
                              "passed_at": _iso(clock), "speed_kmh": speed})
            if batch:
                self.client.publish(TOPIC, json.dumps(batch).encode(), qos=1)
                self.sent += len(batch)
            if clock is not None:
                events, w = _due(self.westlake, w, base, clock)
                if events:
                    self.client.publish(GATES_TOPIC, json.dumps(
                        [{"garage_no": g, "gate": gate, "at": _iso(at), "free": free}
                         for at, g, gate, free in events]).encode(), qos=1)
                events, q = _due(self.qiantang, q, base, clock)
                if events:
                    self.client.publish(QIANTANG_TOPIC, "\n".join(
                        f"{lot},{gate.upper()},{at:.3f},{busy}"
                        for at, lot, gate, busy in events).encode(), qos=1)
            t0 += tick
            self._stop.wait(max(0.0, t0 - time.monotonic()))

    def stop(self) -> None:
        """Stop publishing."""
        self._stop.set()
        self._thread.join(5)
        self.client.disconnect()
        self.client.loop_stop()


Gate = tuple[float, object, str, int]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None).isoformat(
        timespec="milliseconds")


def _due(events: list[Gate], k: int, base: float, clock: float) -> tuple[list[Gate], int]:
    """The events from the ``k``-th (counting on across days) up to ``clock``, with their
    times made absolute, and the index after them."""
    out: list[Gate] = []
    m = len(events)
    while m and len(out) < 5_000:
        t, garage, gate, value = events[k % m]
        at = base + t + 86_400 * (k // m)
        if at > clock:
            break
        out.append((at, garage, gate, value))
        k += 1
    return out, k


def _gates(visits: list[tuple[object, datetime, datetime | None]], day0: datetime
           ) -> list[tuple[float, object, str]]:
    moves = []
    for garage, entered, left in visits:
        moves.append(((entered - day0).total_seconds(), garage, "in"))
        if left is not None:
            moves.append(((left - day0).total_seconds(), garage, "out"))
    moves.sort(key=lambda m: (m[0], str(m[1]), m[2]))
    return moves


def _westlake_gates(city: DemoCity, day0: datetime) -> list[Gate]:
    """Westlake's gate events of the generated day: (seconds into the day, garage, in/out,
    free spaces after it), in time order — what its gate controllers would publish."""
    tables = {t.name: t for t in city.tables["parking-westlake"]}
    capacity = {r[0]: r[6] for r in tables["garages"].rows}
    busy = dict.fromkeys(capacity, 0)
    out = []
    for t, garage, gate in _gates([(r[1], r[3], r[4]) for r in tables["sessions"].rows], day0):
        busy[garage] += 1 if gate == "in" else -1
        out.append((t, garage, gate, max(0, capacity[garage] - busy[garage])))
    return out


def _qiantang_gates(city: DemoCity, day0: datetime) -> list[Gate]:
    """Qiantang's gate events of the generated day: (seconds into the day, lot, in/out,
    spaces occupied after it), in time order."""
    tables = {t.name: t for t in city.tables["parking-qiantang"]}
    busy = {r[0]: 0 for r in tables["lots"].rows}
    out = []
    for t, lot, gate in _gates([(r[1], r[3], r[4]) for r in tables["tickets"].rows], day0):
        busy[lot] += 1 if gate == "in" else -1
        out.append((t, lot, gate, busy[lot]))
    return out
