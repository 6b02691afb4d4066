"""Two real hubs, federated: a district hub (``hub-xihu``, its grid-management centre's
SQLite events with a reporter's name and phone) and the city hub (``hub-city``) above it,
each served by uvicorn on a loopback port in this process, each with its own folder, keys,
grants and ledger. The city reaches the district only through the protocol; every byte the
district sends the city is recorded (``Federated.traffic``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import free_port
from zhongshu.federation import public_key_b64
from zhongshu.node import Node
from zhongshu.policy.identity import issue_token

# the district's raw rows: (event_id, street, category, reported_at, lon, lat, name, phone)
EVENTS = [
    (1, "xihu-lingyin", "litter", "2026-12-01 08:00:00", 120.1011, 30.2411, "王小明",
     "13800001111"),
    (2, "xihu-lingyin", "noise", "2026-12-01 09:30:00", 120.1022, 30.2422, "李四",
     "13800002222"),
    (3, "xihu-beishan", "litter", "2026-12-01 10:15:00", 120.1333, 30.2633, "张三",
     "13800003333"),
    (4, "xihu-beishan", "parking", "2026-12-01 11:45:00", 120.1344, 30.2644, "赵六",
     "13800004444"),
    (5, "xihu-beishan", "sealed", "2026-12-01 12:00:00", 120.1355, 30.2655, "钱七",
     "13800005555"),
]
PURPOSE = "city-operations"


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_district(root: Path, name: str, city_url: str, city_key: str,
                   events: list[tuple[Any, ...]], grant_extra: str = "") -> None:
    """A district hub's folder: its grid centre (SQLite), granting ``hub-city`` the events
    without the phone, the reporter's name as a pseudonym, rows other than `sealed`."""
    (root / "members").mkdir(parents=True)
    (root / "data").mkdir()
    db = sqlite3.connect(root / "data" / "grid.db")
    db.execute("CREATE TABLE events (event_id INTEGER, street TEXT, category TEXT, "
               "reported_at TEXT, lon REAL, lat REAL, reporter_name TEXT, reporter_phone TEXT)")
    db.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)", events)
    db.commit()
    db.close()
    (root / "city.toml").write_text(f'''[city]
name = "{name}"

[hub]
origin = "hub.{name}.example"

[federation]
member = "hub-{name}"
refresh_s = 3600

[[federation.peers]]
name = "hub-city"
url = "{city_url}"
public_key = "{city_key}"
role = "city"
''')
    # the city's datasets granted down to this district, granted onward to its cockpit
    (root / "members" / "hub-city.toml").write_text(f'''[member]
name = "hub-city"
kind = "hub"

[[grants]]
consumer = "{name}-cockpit"
datasets = ["civil.districts"]
purposes = ["district-operations"]
''')
    (root / "members" / f"{name}-cockpit.toml").write_text(
        f'[member]\nname = "{name}-cockpit"\nkind = "cockpit"\n')
    (root / "members" / f"{name}-grid.toml").write_text(f'''[member]
name = "{name}-grid"
kind = "department"

[[sources]]
name = "{name}-grid-db"
kind = "sqlite"
path = "data/grid.db"

[[datasets]]
name = "{name}_grid.events"
source = "{name}-grid-db"
table = "events"
columns = [
  {{ name = "event_id", type = "BIGINT", classification = "public" }},
  {{ name = "street", type = "VARCHAR" }},
  {{ name = "category", type = "VARCHAR" }},
  {{ name = "reported_at", type = "VARCHAR" }},
  {{ name = "lon", type = "DOUBLE" }},
  {{ name = "lat", type = "DOUBLE" }},
  {{ name = "reporter_name", type = "VARCHAR", classification = "personal" }},
  {{ name = "reporter_phone", type = "VARCHAR", classification = "personal" }},
]

[[grants]]
consumer = "hub-city"
datasets = ["{name}_grid.events"]
purposes = ["{PURPOSE}"]
columns = ["event_id", "street", "category", "reported_at", "lon", "lat", "reporter_name"]
masking = {{ reporter_name = "pseudonym" }}
row_scope = "category <> 'sealed'"
{grant_extra}''')


def write_city(root: Path, peers: dict[str, tuple[str, str]]) -> None:
    """The city hub's folder: its peers (name → url, key), and its own grants onward of
    the districts' events: ``cockpit-city`` everything offered, ``app-narrow`` two columns
    of one street, ``app-wide`` asking for the phone too."""
    (root / "members").mkdir(parents=True)
    peer_tables = "".join(f'''
[[federation.peers]]
name = "hub-{n}"
url = "{url}"
public_key = "{key}"
role = "district"
''' for n, (url, key) in peers.items())
    (root / "city.toml").write_text(f'''[city]
name = "hangzhou"

[hub]
origin = "hub.city.example"

[federation]
member = "hub-city"
refresh_s = 3600
timeout_s = 0.5
answer_timeout_s = 3.0
breaker_failures = 2
breaker_open_s = 30
{peer_tables}
[[federation.unions]]
name = "grid.events"
owner = "city-grid"
parts = [{", ".join(f'"{n}_grid.events"' for n in peers)}]
''')
    (root / "members" / "city-grid.toml").write_text(f'''[member]
name = "city-grid"
kind = "department"

[[grants]]
consumer = "cockpit-city"
datasets = ["grid.events"]
purposes = ["{PURPOSE}"]
''')
    for n in peers:
        (root / "members" / f"hub-{n}.toml").write_text(f'''[member]
name = "hub-{n}"
kind = "hub"

[[grants]]
consumer = "cockpit-city"
datasets = ["{n}_grid.events"]
purposes = ["{PURPOSE}"]
columns = ["event_id", "street", "category", "reported_at", "lon", "lat", "reporter_name"]

[[grants]]
consumer = "app-narrow"
datasets = ["{n}_grid.events"]
purposes = ["{PURPOSE}"]
columns = ["event_id", "category"]
row_scope = "category = 'litter'"

[[grants]]
consumer = "app-wide"
datasets = ["{n}_grid.events"]
purposes = ["{PURPOSE}"]
columns = ["event_id", "street", "category", "reported_at", "lon", "lat", "reporter_name",
           "reporter_phone"]
''')
    for consumer in ("cockpit-city", "app-narrow", "app-wide"):
        (root / "members" / f"{consumer}.toml").write_text(
            f'[member]\nname = "{consumer}"\nkind = "consumer"\n')
    # one local dataset of the city's own
    (root / "data").mkdir()
    db = sqlite3.connect(root / "data" / "civil.db")
    db.execute("CREATE TABLE districts (district TEXT, population INTEGER)")
    db.executemany("INSERT INTO districts VALUES (?, ?)", [("xihu", 1), ("binjiang", 2)])
    db.commit()
    db.close()
    (root / "members" / "civil-affairs.toml").write_text(f'''[member]
name = "civil-affairs"
kind = "department"

[[sources]]
name = "civil-db"
kind = "sqlite"
path = "data/civil.db"

[[datasets]]
name = "civil.districts"
source = "civil-db"
table = "districts"
columns = [{{ name = "district", type = "VARCHAR" }}, {{ name = "population", type = "BIGINT" }}]

[[grants]]
consumer = "cockpit-city"
datasets = ["civil.districts"]
purposes = ["{PURPOSE}"]
{"".join(f"""
[[grants]]
consumer = "hub-{n}"
datasets = ["civil.districts"]
purposes = ["district-operations"]
row_scope = "district = '{n}'"
""" for n in peers)}''')


class Served:
    """A node's protocol app served by uvicorn on ``port`` in a thread."""

    def __init__(self, node: Node, port: int) -> None:
        import uvicorn

        self.node = node
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.app = node.app(url=self.url)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port,
                                                    log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "hub did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class Recording(httpx.BaseTransport):
    """The city's transport to a peer: every response body it receives is kept."""

    def __init__(self, received: list[bytes], sent: list[httpx.Request],
                 bodies: list[bytes]) -> None:
        self.inner = httpx.HTTPTransport()
        self.received = received  # headers and body of each answer
        self.sent = sent
        self.bodies = bodies

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        r = self.inner.handle_request(request)
        body = r.read()
        self.bodies.append(body)
        self.received.append(b"".join(f"{k}: {v}\n".encode() for k, v in r.headers.items())
                             + body)
        return httpx.Response(r.status_code, headers=r.headers, content=body,
                              request=request)


@dataclass
class Federated:
    """A running city hub and its district hubs."""

    city: Served
    districts: dict[str, Served]
    roots: dict[str, Path]
    traffic: list[bytes] = field(default_factory=list)
    sent: list[httpx.Request] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    @property
    def sync(self) -> Any:
        fed = self.city.node.federation
        assert fed is not None
        return fed[1]

    def token(self, member: str) -> str:
        return issue_token(self.city.node.catalog, member)

    def ask(self, member: str, sql: str, **extra: Any) -> httpx.Response:
        return httpx.post(f"{self.city.url}/v1/query", timeout=30,
                          headers={"Authorization": f"Bearer {self.token(member)}"},
                          json={"sql": sql, "purpose": PURPOSE, **extra})


def start_federation(tmp: Path, districts: tuple[str, ...] = ("xihu",),
                     events: dict[str, list[tuple[Any, ...]]] | None = None) -> Federated:
    """Write and start the district hubs, then the city hub, and fetch the catalogs once."""
    keys = {n: Ed25519PrivateKey.generate() for n in ("city", *districts)}
    ports = {n: free_port() for n in keys}
    urls = {n: f"http://127.0.0.1:{p}" for n, p in ports.items()}
    roots = {n: tmp / n for n in keys}
    for n in districts:
        write_district(roots[n], n, urls["city"], public_key_b64(keys["city"]),
                       (events or {}).get(n, EVENTS))
    write_city(roots["city"], {n: (urls[n], public_key_b64(keys[n])) for n in districts})
    for n, key in keys.items():
        (roots[n] / "state").mkdir(parents=True, exist_ok=True)
        (roots[n] / "state" / "federation.key").write_bytes(_pem(key))
    served = {n: Served(Node.open(roots[n], serve=True, monitor=False), ports[n])
              for n in districts}
    city_node = Node.open(roots["city"], serve=True, monitor=False)
    traffic: list[bytes] = []
    sent: list[httpx.Request] = []
    bodies: list[bytes] = []
    city_node.peer_transport = lambda peer: Recording(traffic, sent, bodies)
    fed = Federated(Served(city_node, ports["city"]), served, roots, traffic, sent, bodies)
    fed.sync.refresh()
    return fed


def stop_federation(fed: Federated) -> None:
    for s in (fed.city, *fed.districts.values()):
        s.stop()
        s.node.close()


@pytest.fixture(scope="module")
def federated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federated]:
    """A city hub over one district hub, `xihu` (shared by a module's tests: they change
    nothing)."""
    fed = start_federation(tmp_path_factory.mktemp("fed"))
    try:
        yield fed
    finally:
        stop_federation(fed)


@pytest.fixture
def one_district(tmp_path: Path) -> Iterator[Federated]:
    """A city hub over `xihu`, for a test that changes the district."""
    fed = start_federation(tmp_path)
    try:
        yield fed
    finally:
        stop_federation(fed)


def restart_district(fed: Federated, name: str) -> None:
    """Stop the district hub and serve its folder again on the same port (a new process,
    as far as the city can tell)."""
    old = fed.districts[name]
    old.stop()
    old.node.close()
    fed.districts[name] = Served(Node.open(fed.roots[name], serve=True, monitor=False),
                                 old.port)


@pytest.fixture
def two_districts(tmp_path: Path) -> Iterator[Federated]:
    """A city hub over `xihu` and `binjiang` (for tests that stop one)."""
    fed = start_federation(tmp_path, ("xihu", "binjiang"))
    try:
        yield fed
    finally:
        stop_federation(fed)
