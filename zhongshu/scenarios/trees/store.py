"""The trees scenario's own store: the derived datasets it publishes, in a SQLite file its
member (``app-trees``) declares as a source — so the hub serves them, governed by that
member's grants, like any department's data."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zhongshu.scenarios import own_store

FILE = "derived.sqlite"
COLUMNS = ("survey", "district", "name_zh", "trees", "population", "area_km2", "trees_per_km2",
           "trees_per_1000_residents", "computed_at")
DDL = ("CREATE TABLE IF NOT EXISTS density (survey TEXT NOT NULL, district TEXT NOT NULL, "
       "name_zh TEXT, trees INTEGER NOT NULL, population INTEGER, area_km2 REAL, "
       "trees_per_km2 REAL, trees_per_1000_residents REAL, computed_at TEXT NOT NULL, "
       "PRIMARY KEY (survey, district))")


def create(home: Path) -> Path:
    """The store's file, created (empty) if missing."""
    return own_store(home, FILE, DDL)


def publish(home: Path, survey: str, rows: list[dict[str, Any]]) -> int:
    """Replace the density rows of ``survey`` (one transaction); how many were written."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with sqlite3.connect(create(home)) as c:
        c.execute("DELETE FROM density WHERE survey = ?", (survey,))
        c.executemany(f"INSERT INTO density VALUES ({', '.join('?' * len(COLUMNS))})",
                      [(survey, r["district"], r["name_zh"], r["trees"], r["population"],
                        r["area_km2"], r["trees_per_km2"], r["trees_per_1000_residents"], stamp)
                       for r in rows])
    return len(rows)
