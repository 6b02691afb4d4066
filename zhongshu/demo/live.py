"""The demo city, live: the traffic police's checkpoint cameras publish passages on MQTT,
as a department would, and the hub folds them into windows the cockpits can watch.

``zhongshu demo --live`` declares the stream (once) in the demo city's traffic-police
member file and runs :class:`Feed`, which replays the generator's passages — the same
routes, rush hours and speeds as the historical table — at the time of day it is now, at a
chosen rate."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt

from zhongshu.demo.generate import DemoCity

log = logging.getLogger("zhongshu.demo.live")
TOPIC = "demo-city/traffic-police/passages"
GATES_TOPIC = "demo-city/parking-westlake/gates"
MARK = "# --- live passages (zhongshu demo --live) ---"
GATES_MARK = "# --- live gate events (zhongshu demo --live) ---"
LIVE = f"""

{MARK}
[[streams]]
name = "passages-live"
kind = "mqtt"
topic = "{TOPIC}"
time_column = "passed_at"
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
]

[[aggregates]]
dataset = "traffic.live_segment_flow"
title = "Vehicles per segment and minute, live"
stream = "passages-live"
window_s = 60
lateness_s = 120
group_by = ["segment_id", "direction", "district", "vehicle_type"]
measures = {{ vehicles = "count(*)", avg_speed_kmh = "avg(speed_kmh)" }}
area_column = "district"

[[grants]]
consumer = "cockpit-city"
purposes = ["city-operations"]
datasets = ["traffic.live_segment_flow"]

[[grants]]
consumer = "cockpit-xihu"
purposes = ["district-operations"]
datasets = ["traffic.live_segment_flow"]
row_scope = "district = 'xihu'"
"""


GATES = f"""

{GATES_MARK}
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

[[grants]]
consumer = "cockpit-city"
purposes = ["city-operations"]
datasets = ["parking_westlake.live_free"]

[[grants]]
consumer = "cockpit-xihu"
purposes = ["district-operations"]
datasets = ["parking_westlake.live_free"]
row_scope = "garage_no IN (SELECT garage_no FROM parking_westlake.garages WHERE district = 'xihu')"

[[grants]]
consumer = "app-parking"
purposes = ["convenient-parking"]
datasets = ["parking_westlake.live_free"]
"""


def declare(city_dir: Path) -> bool:
    """Add the live streams to the demo city's traffic police and Westlake parking (once);
    whether anything was added."""
    added = False
    for member, mark, text in (("traffic-police", MARK, LIVE),
                               ("parking-westlake", GATES_MARK, GATES)):
        path = city_dir / "members" / f"{member}.toml"
        old = path.read_text(encoding="utf-8")
        if mark not in old:
            path.write_text(old + text, encoding="utf-8")
            added = True
    return added


class Feed:
    """Replays the demo generator's passages at the current time of day, ``rate`` a second,
    on an MQTT broker (the department's side of the stream)."""

    def __init__(self, seed: int, scale: float, rate: float, host: str = "127.0.0.1",
                 port: int = 1883) -> None:
        self.rate = rate
        city = DemoCity(seed=seed, scale=scale)
        rows = next(t for t in city.tables["traffic-police"] if t.name == "passages").rows
        day0 = rows[0][4].replace(hour=0, minute=0, second=0, microsecond=0)
        # (seconds into the day, camera, plate, type, speed)
        self.passages = [((r[4] - day0).total_seconds(), r[1], r[2], r[3], r[5]) for r in rows]
        self.gates = _gate_events(city, day0)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
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
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        into = (now - midnight).total_seconds()
        i = next((k for k, p in enumerate(self.passages) if p[0] >= into), 0)
        j = next((k for k, g in enumerate(self.gates) if g[0] >= into), 0)
        tick, t0, due, gates_due, gates_sent = 0.1, time.monotonic(), 0.0, 0.0, 0
        while not self._stop.is_set():
            due += self.rate * tick
            gates_due += self.rate / 20 * tick
            if int(gates_due) > gates_sent and self.gates:
                at = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")
                events = []
                for _ in range(int(gates_due) - gates_sent):
                    g = self.gates[j % len(self.gates)]
                    j += 1
                    events.append({"garage_no": g[1], "gate": g[2], "at": at, "free": g[3]})
                gates_sent += len(events)
                self.client.publish(GATES_TOPIC, json.dumps(events).encode(), qos=1)
            at = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")
            batch = []
            for _ in range(min(int(due) - self.sent, 10_000)):
                p = self.passages[i % len(self.passages)]
                i += 1
                batch.append({"camera_id": p[1], "plate": p[2], "vehicle_type": p[3],
                              "passed_at": at, "speed_kmh": p[4]})
            if batch:
                self.client.publish(TOPIC, json.dumps(batch).encode(), qos=1)
                self.sent += len(batch)
            t0 += tick
            self._stop.wait(max(0.0, t0 - time.monotonic()))

    def stop(self) -> None:
        """Stop publishing."""
        self._stop.set()
        self._thread.join(5)
        self.client.disconnect()
        self.client.loop_stop()



def _gate_events(city: DemoCity, day0: datetime) -> list[tuple[float, str, str, int]]:
    """Westlake's gate events of the generated day: (seconds into the day, garage, in/out,
    free spaces after it), in time order — what its gate controllers would publish."""
    tables = {t.name: t for t in city.tables["parking-westlake"]}
    capacity = {r[0]: r[6] for r in tables["garages"].rows}
    moves = []
    for _sid, garage, _plate, entered, left, _fee in tables["sessions"].rows:
        moves.append(((entered - day0).total_seconds(), garage, "in"))
        if left is not None:
            moves.append(((left - day0).total_seconds(), garage, "out"))
    moves.sort()
    busy = dict.fromkeys(capacity, 0)
    out = []
    for t, garage, gate in moves:
        busy[garage] += 1 if gate == "in" else -1
        out.append((t, garage, gate, max(0, capacity[garage] - busy[garage])))
    return out
