"""A source stopped mid-run: its datasets answer source_unavailable, the rest keep working,
health says why (without the password), and the hub recovers by itself when it is back.

The outage is real: a private PostgreSQL instance on its own port is stopped and started (the
shared server is never touched).
"""

from __future__ import annotations

import glob
import json
import shutil
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import tomli_w

from tests.conftest import CI, SCALE, SEED, RunningHub, free_port
from zhongshu.demo import writers
from zhongshu.demo.generate import DemoCity
from zhongshu.node import Node
from zhongshu.sources.errors import REASONS

pytestmark = [pytest.mark.slow, pytest.mark.server]
PASSWORD = "outage-S3cret"


class PrivatePostgres:
    """A throwaway PostgreSQL cluster owned by the postgres user, on a free port."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins or shutil.which("runuser") is None:
            if CI:
                pytest.fail("PostgreSQL server binaries (initdb) are needed for the outage test")
            pytest.skip("PostgreSQL server binaries not installed")
        self.bin = Path(bins[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="zs-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        self._pg("initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres",
                 "--no-sync")

    def _pg(self, tool: str, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / tool), *args],
                       check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._pg("pg_ctl", "-D", str(self.dir / "data"), "-w", "-l", str(self.dir / "log"),
                 "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                       "-c fsync=off", "start")

    def stop(self) -> None:
        self._pg("pg_ctl", "-D", str(self.dir / "data"), "-w", "-m", "immediate", "stop")

    def destroy(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def outage_city(city_tmp: Path, demo_dir: Path) -> Iterator[tuple[Path, PrivatePostgres]]:
    pg = PrivatePostgres()
    try:
        pg.start()
        root = city_tmp / "city"
        shutil.copytree(demo_dir, root, ignore=shutil.ignore_patterns("state", "ledger.pin"))
        city = DemoCity(SEED, SCALE)
        writers.write_postgres({"host": "127.0.0.1", "port": pg.port, "user": "postgres"},
                               "traffic", city.tables["traffic-police"])
        member = root / "members" / "traffic-police.toml"
        doc = tomllib.loads(member.read_text())
        doc["sources"] = [{"name": "traffic-police-db", "kind": "postgres", "host": "127.0.0.1",
                           "port": pg.port, "database": "traffic", "user": "postgres",
                           "password_secret": "traffic-pw", "statement_timeout_s": 5}]
        member.write_text(tomli_w.dumps(doc))
        (root / "secrets.toml").write_text(tomli_w.dumps({"secrets": {"traffic-pw": PASSWORD}}))
        text = (root / "city.toml").read_text().replace("row_cap = 10000",
                                                       "row_cap = 10000\nhealth_interval_s = 0.3")
        (root / "city.toml").write_text(text)
        yield root, pg
    finally:
        pg.destroy()


def _query(client: httpx.Client, sql: str) -> httpx.Response:
    return client.post("/v1/query", json={"sql": sql, "purpose": "city-operations"})


def test_outage_and_recovery(outage_city: tuple[Path, PrivatePostgres]) -> None:
    root, pg = outage_city
    node = Node.open(root, serve=True, monitor=True)
    hub = RunningHub(node, root)
    traffic = "SELECT count(*) AS n FROM traffic.passages"
    traffic_join = ("SELECT c.district, count(*) FROM traffic.passages p JOIN traffic.checkpoints"
                    " c ON p.camera_id = c.camera_id JOIN parks.trees t ON t.district = "
                    "c.district GROUP BY 1")
    others = "SELECT count(*) AS n FROM parks.trees"
    try:
        client = httpx.Client(base_url=hub.url, timeout=30,
                              headers={"Authorization": f"Bearer {hub.token('cockpit-city')}"})
        n_before = _query(client, traffic).json()["rows"][0][0]
        assert n_before > 0
        assert _query(client, traffic_join).status_code == 200

        pg.stop()
        asked = {traffic: ["traffic.passages"],
                 traffic_join: ["parks.trees", "traffic.checkpoints", "traffic.passages"]}
        for sql in (traffic, traffic_join):
            r = _query(client, sql)
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "source_unavailable"
            assert PASSWORD not in r.text
            # the refusal names the datasets asked, and is in each owner's usage index
            index = r.json()["receipt"]["index"]
            refusal = json.loads(node.ledger.entry(index))
            assert (refusal["outcome"], refusal["datasets"]) == ("source_unavailable",
                                                                 asked[sql])
            assert all(index in node.ledger.reading(d) for d in asked[sql])
        assert _query(client, others).status_code == 200
        ops = httpx.Client(base_url=hub.url, timeout=30, headers={
            "Authorization": f"Bearer {hub.token('data-bureau')}"})  # the hub's operators
        health = ops.get("/v1/health").json()
        reason = health["sources"]["traffic-police-db"]
        assert reason.startswith("down: ") and reason[6:] in REASONS, reason
        assert health["sources"]["parks-db"] == "ok"
        assert client.get("/v1/health").json()["summary"]["sources_down"] == 1
        for text in (str(health), r.text, client.get("/metrics").text):
            assert PASSWORD not in text and f":{pg.port}" not in text
            assert f"port {pg.port}" not in text and "127.0.0.1" not in text
        ops.close()

        pg.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if client.get("/v1/health").json()["summary"]["sources_down"] == 0:
                break
            time.sleep(0.2)
        r = _query(client, traffic)
        assert r.status_code == 200, r.text
        assert r.json()["rows"][0][0] == n_before
        assert _query(client, traffic_join).status_code == 200
        client.close()
    finally:
        hub.stop()
        node.close()
