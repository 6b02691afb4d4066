"""The demo as a federation (``zhongshu demo --federated``): district hubs for ``xihu`` and
``binjiang`` under the demo city's hub, each in its own folder ``<demo>/districts/NAME/``
(its own state, ledger, keys and tokens), each with its own grid-management centre
(``NAME-grid``, ``NAME_grid.events`` in SQLite: event_id, street, category, reported_at,
resolved_at, lon, lat, reporter_phone **P**) granting the city hub (``hub-city`` there) the
events for ``city-operations`` without the phone. The city declares its peers, grants their
events onward to ``cockpit-city``, and the union ``grid.events`` (owned by ``city-grid``)
with a ``district`` column.

Keys are made here once, each in its own hub's ``state/federation.key``; only public keys
are copied into the other hubs' ``city.toml``. Deterministic for the demo's seed.
"""

from __future__ import annotations

import base64
import os
import random
import sqlite3
import tomllib
from pathlib import Path

import tomli_w
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from zhongshu.config import load_city

DISTRICTS = ("xihu", "binjiang")
PURPOSE = "city-operations"
CATEGORIES = ("litter", "noise", "illegal-parking", "road-damage", "street-light", "water")


def _key(state: Path) -> str:
    """The hub's federation key in ``state/federation.key`` (made once); its public key."""
    path = state / "federation.key"
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, Ed25519PrivateKey)
    else:
        key = Ed25519PrivateKey.generate()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def _events(name: str, streets: list[str], seed: int, n: int) -> list[tuple[object, ...]]:
    rng = random.Random(f"{seed}:{name}:grid")
    out: list[tuple[object, ...]] = []
    for i in range(1, n + 1):
        hour, minute = rng.randint(0, 23), rng.randint(0, 59)
        resolved = None if rng.random() < 0.3 else \
            f"2026-12-01 {min(hour + rng.randint(1, 6), 23):02d}:{minute:02d}:00"
        out.append((i, rng.choice(streets), rng.choice(CATEGORIES),
                    f"2026-12-01 {hour:02d}:{minute:02d}:00", resolved,
                    round(120.0 + rng.random() * 0.3, 6), round(30.1 + rng.random() * 0.2, 6),
                    f"13{rng.randint(100_000_000, 999_999_999)}"))
    return out


def _district(folder: Path, name: str, city_url: str, city_key: str, streets: list[str],
              seed: int, n: int) -> None:
    """Write the district hub's folder (once; its peer, the city hub, every time)."""
    (folder / "members").mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    db = folder / "data" / "grid.sqlite"
    if not db.exists():
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE events (event_id INTEGER PRIMARY KEY, street TEXT, "
                    "category TEXT, reported_at TEXT, resolved_at TEXT, lon REAL, lat REAL, "
                    "reporter_phone TEXT)")
        con.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)",
                        _events(name, streets, seed, n))
        con.commit()
        con.close()
    doc = {"city": {"name": name, "title": f"{name.title()} district hub"},
           "hub": {"origin": f"hub.{name}.demo"},
           "federation": {"member": f"hub-{name}", "peers": [
               {"name": "hub-city", "url": city_url, "public_key": city_key,
                "role": "city"}]}}
    (folder / "city.toml").write_text(tomli_w.dumps(doc), encoding="utf-8")
    (folder / "members" / "hub-city.toml").write_text(tomli_w.dumps(
        {"member": {"name": "hub-city", "kind": "hub", "title": "The city hub"}}))
    cols = [("event_id", "BIGINT", "public"), ("street", "VARCHAR", "internal"),
            ("category", "VARCHAR", "internal"), ("reported_at", "VARCHAR", "internal"),
            ("resolved_at", "VARCHAR", "internal"), ("lon", "DOUBLE", "internal"),
            ("lat", "DOUBLE", "internal"), ("reporter_phone", "VARCHAR", "personal")]
    (folder / "members" / f"{name}-grid.toml").write_text(tomli_w.dumps({
        "member": {"name": f"{name}-grid", "kind": "department",
                   "title": f"{name.title()} grid-management centre"},
        "sources": [{"name": f"{name}-grid-db", "kind": "sqlite", "path": "data/grid.sqlite"}],
        "datasets": [{"name": f"{name}_grid.events", "title": "Grid events",
                      "source": f"{name}-grid-db", "table": "events", "area_column": "street",
                      "columns": [{"name": c, "type": t, "classification": k}
                                  for c, t, k in cols]}],
        "grants": [{"consumer": "hub-city", "datasets": [f"{name}_grid.events"],
                    "purposes": [PURPOSE],
                    "columns": [c for c, _, k in cols if k != "personal"]}]}))


def prepare(city_dir: Path, port: int, seed: int = 42, scale: float = 1.0) -> dict[str, Path]:
    """Create (or update) the district hubs' folders for the city hub served on ``port``
    (districts on ``port + 1``, ``port + 2``) and declare the federation in the city's
    folder; returns district name → folder. Idempotent: run at every demo start."""
    city = load_city(city_dir)
    city_key = _key(city.state_dir)
    n = max(50, int(2000 * scale))
    folders, peers = {}, []
    for i, name in enumerate(DISTRICTS, start=1):
        folder = city_dir / "districts" / name
        streets = [s.name for s in city.streets if s.district == name] or [f"{name}-centre"]
        _district(folder, name, f"http://127.0.0.1:{port}", city_key, streets, seed, n)
        peers.append({"name": f"hub-{name}", "url": f"http://127.0.0.1:{port + i}",
                      "public_key": _key(folder / "state"), "role": "district",
                      "namespace": name})
        folders[name] = folder
        (city_dir / "members" / f"hub-{name}.toml").write_text(tomli_w.dumps({
            "member": {"name": f"hub-{name}", "kind": "hub",
                       "title": f"{name.title()} district hub"},
            "grants": [{"consumer": "cockpit-city", "datasets": [f"{name}_grid.events"],
                        "purposes": [PURPOSE]}]}))
    (city_dir / "members" / "city-grid.toml").write_text(tomli_w.dumps({
        "member": {"name": "city-grid", "kind": "department",
                   "title": "City grid-management centre"},
        "grants": [{"consumer": "cockpit-city", "datasets": ["grid.events"],
                    "purposes": [PURPOSE]}]}))
    doc = tomllib.loads((city_dir / "city.toml").read_text(encoding="utf-8"))
    doc["federation"] = {"member": "hub-city", "peers": peers, "unions": [
        {"name": "grid.events", "owner": "city-grid", "title": "Grid events of the districts",
         "parts": [f"{d}_grid.events" for d in DISTRICTS]}]}
    (city_dir / "city.toml").write_text(tomli_w.dumps(doc), encoding="utf-8")
    return folders
