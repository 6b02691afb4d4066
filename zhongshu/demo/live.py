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
MARK = "# --- live passages (zhongshu demo --live) ---"
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


def declare(city_dir: Path) -> bool:
    """Add the live stream to the demo city's traffic police (once); whether it was added."""
    member = city_dir / "members" / "traffic-police.toml"
    text = member.read_text(encoding="utf-8")
    if MARK in text:
        return False
    member.write_text(text + LIVE, encoding="utf-8")
    return True


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
        tick, t0, due = 0.1, time.monotonic(), 0.0
        while not self._stop.is_set():
            due += self.rate * tick
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

