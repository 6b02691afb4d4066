"""Apache Superset against the hub's wire endpoint, as a city's analyst would set it up.

1. installs Apache Superset (and psycopg2, its PostgreSQL driver) in a throwaway virtualenv;
2. starts a hub (`zhongshu demo --pg-port N`) and Superset's web server, both on loopback;
3. through Superset's own REST API: logs in, registers the hub as a PostgreSQL database
   (user = member, password = token, database = purpose), tests the connection, adds
   `traffic.passages` and `traffic.checkpoints` as datasets (Superset reads their columns
   from the hub's emulated catalog), and runs a chart query (passages by vehicle type) and a
   SQL Lab query (the README's first query);
4. checks each answer against `POST /v1/query` for the same caller, and prints what it saw.

Not part of `make test`: the install alone takes minutes.

    python bench/bi_clients.py [--venv /tmp/zs-superset] [--superset 6.1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from _common import build, free_port, serve  # type: ignore[import-not-found]

from zhongshu.demo.city import ServerSettings

README_SQL = ("SELECT c.district, count(*) AS passages FROM traffic.passages p "
              "JOIN traffic.checkpoints c USING (camera_id) GROUP BY 1 ORDER BY 2 DESC")
CHART_SQL = ("SELECT vehicle_type, count(*) AS count FROM traffic.passages "
             "GROUP BY vehicle_type ORDER BY vehicle_type")


def step(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def install(venv: Path, version: str) -> Path:
    py = venv / "bin" / "python"
    if not py.exists():
        step(f"creating {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    marker = venv / f"installed-{version}"
    if not marker.exists():
        # Superset pins its dependencies in its repository, not on PyPI: its CLI imports
        # `rich` and its PostgreSQL engine spec `cachetools` without declaring them, and
        # flask-caching 2.3 changed an argument its metastore cache does not take
        step(f"installing apache-superset=={version} and psycopg2-binary (minutes)")
        subprocess.run([str(py), "-m", "pip", "install", "-q", f"apache-superset=={version}",
                        "psycopg2-binary", "rich", "cachetools", "flask-caching<2.3"],
                       check=True)
        marker.touch()
    return venv / "bin" / "superset"


def start_superset(superset: Path, home: Path, port: int) -> subprocess.Popen[bytes]:
    home.mkdir(parents=True, exist_ok=True)
    config = home / "superset_config.py"
    config.write_text(
        f"SECRET_KEY = {secrets.token_hex(32)!r}\n"
        f"SQLALCHEMY_DATABASE_URI = 'sqlite:///{home / 'superset.db'}'\n"
        "WTF_CSRF_ENABLED = False\nTALISMAN_ENABLED = False\n"
        "FEATURE_FLAGS = {}\n")
    env = {**os.environ, "SUPERSET_CONFIG_PATH": str(config), "FLASK_APP": "superset",
           "SUPERSET_HOME": str(home)}
    for args in (["db", "upgrade"],
                 ["fab", "create-admin", "--username", "admin", "--firstname", "a",
                  "--lastname", "b", "--email", "admin@example.invalid", "--password",
                  "admin"],
                 ["init"]):
        step("superset " + " ".join(args[:2]))
        subprocess.run([str(superset), *args], env=env, check=True, capture_output=True)
    log = open(home / "web.log", "ab")
    proc = subprocess.Popen([str(superset), "run", "-h", "127.0.0.1", "-p", str(port),
                             "--with-threads"], env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(1)
    proc.terminate()
    raise RuntimeError(f"superset did not start: see {home / 'web.log'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", type=Path, default=Path("/tmp/zs-superset"))
    ap.add_argument("--superset", default="6.1.0")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/zhongshu-bench"))
    args = ap.parse_args()
    superset = install(args.venv, args.superset)
    city = build(args.workdir, "city-sqlite", 0.1, "sqlite", ServerSettings.from_env(
        prefix="zs_bench_"))
    pg_port, web_port = free_port(), free_port()
    with serve(city, None, "--pg-port", str(pg_port)) as (hub_url, token):
        web = start_superset(superset, args.venv / "home", web_port)
        try:
            run(f"http://127.0.0.1:{web_port}", hub_url, pg_port, token)
        finally:
            web.terminate()
            web.wait(30)


def run(base: str, hub_url: str, pg_port: int, token: str) -> None:
    s = httpx.Client(base_url=base, timeout=120)
    r = s.post("/api/v1/security/login", json={"username": "admin", "password": "admin",
                                               "provider": "db", "refresh": True})
    r.raise_for_status()
    s.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    uri = (f"postgresql+psycopg2://cockpit-city:{token}@127.0.0.1:{pg_port}/"
           "city-operations")
    step("testing the connection through Superset")
    r = s.post("/api/v1/database/test_connection/", json={
        "sqlalchemy_uri": uri, "database_name": "zhongshu", "engine": "postgresql"})
    print("  test_connection:", r.status_code, r.text[:200])
    r.raise_for_status()
    r = s.post("/api/v1/database/", json={"database_name": "zhongshu",
                                          "sqlalchemy_uri": uri, "expose_in_sqllab": True})
    print("  database:", r.status_code, r.text[:200])
    r.raise_for_status()
    db_id = r.json()["id"]
    r = s.get(f"/api/v1/database/{db_id}/schemas/")
    print("  schemas Superset sees:", r.json().get("result"))
    r = s.get(f"/api/v1/database/{db_id}/tables/", params={"q": "(schema_name:traffic)"})
    print("  tables in traffic:", [t["value"] for t in r.json().get("result", [])])
    step("adding traffic.passages as a dataset (columns from the emulated catalog)")
    r = s.post("/api/v1/dataset/", json={"database": db_id, "schema": "traffic",
                                         "table_name": "passages"})
    print("  dataset:", r.status_code, r.text[:200])
    r.raise_for_status()
    ds_id = r.json()["id"]
    cols = [c["column_name"] for c in s.get(f"/api/v1/dataset/{ds_id}").json()["result"]
            ["columns"]]
    print("  its columns:", cols)
    step("a chart query: passages by vehicle type")
    r = s.post("/api/v1/chart/data", json={
        "datasource": {"id": ds_id, "type": "table"},
        "queries": [{"columns": ["vehicle_type"], "metrics": ["count"],
                     "orderby": [["vehicle_type", True]], "row_limit": 100}],
        "result_format": "json", "result_type": "full"})
    print("  chart:", r.status_code)
    r.raise_for_status()
    got = [[d["vehicle_type"], d["count"]] for d in r.json()["result"][0]["data"]]
    want = http_rows(hub_url, token, CHART_SQL)
    print("  chart rows:", got)
    print("  equals POST /v1/query:", got == want)
    step("SQL Lab: the README's first query")
    r = s.post("/api/v1/sqllab/execute/", json={"database_id": db_id, "sql": README_SQL,
                                                "runAsync": False, "schema": "traffic"})
    print("  sqllab:", r.status_code)
    r.raise_for_status()
    got = [[d["district"], d["passages"]] for d in r.json()["data"]]
    print("  rows:", got)
    print("  equals POST /v1/query:", got == http_rows(hub_url, token, README_SQL))


def http_rows(hub_url: str, token: str, sql: str) -> list[Any]:
    r = httpx.post(f"{hub_url}/v1/query", json={"sql": sql, "purpose": "city-operations"},
                   headers={"Authorization": f"Bearer {token}"}, timeout=60)
    r.raise_for_status()
    rows: list[Any] = json.loads(r.content)["rows"]
    return rows


if __name__ == "__main__":
    main()
