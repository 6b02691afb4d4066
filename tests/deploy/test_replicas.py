"""Three replicas of one city on one PostgreSQL store behind HAProxy, with the shipped
``deploy/haproxy.cfg`` — real processes, started as an operator would (``zhongshu db upgrade``,
then ``zhongshu serve`` three times, then ``haproxy``).

Under a bounded load from several clients, the replica that holds the sequencer's lease is
SIGKILLed, and later another: every answer a client got is the right one (against the source
file read directly) with a receipt that a later signed checkpoint proves; no index twice;
``zhongshu ledger verify`` passes; a client sees at most the requests that were inside a killed
replica fail, as ``503 replica_unavailable`` or a closed connection; the lease moves to a
live replica within 5 s."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import HubProcess, copy_demo_city, free_port, readable_dir
from tests.deploy.balancer import haproxy, tool
from tests.deploy.proofs import assert_all_proved
from tests.deploy.store import set_up, zs
from tests.stores.pg import fresh_database

pytestmark = [pytest.mark.server, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
P = "city-operations"
SQL = "SELECT district, count(*) AS n FROM traffic.checkpoints GROUP BY 1 ORDER BY 1"
CLIENTS, QUERIES = 4, 750  # 3,000 queries in all



def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (the sequencer, the DuckDB workers)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Cluster:
    root: Path
    url: str
    env: dict[str, str]
    replicas: list[HubProcess]
    lb: str
    lb_wire: int
    tokens: dict[str, str]
    killed: list[int] = field(default_factory=list)

    def health(self, i: int) -> dict[str, Any] | None:
        """Replica ``i``'s health as the operator sees it (None when it does not answer)."""
        try:
            r = httpx.get(f"{self.replicas[i].url}/v1/health", timeout=5, headers={
                "Authorization": f"Bearer {self.tokens['data-bureau']}"})
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    def leader(self, among: list[int], timeout_s: float) -> tuple[int, float]:
        """The replica among ``among`` leading the sequencer, and the seconds it took to
        find one."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            for i in among:
                h = self.health(i)
                if h and h["ledger"].get("sequencer") == "leading":
                    return i, time.monotonic() - t0
            time.sleep(0.05)
        raise AssertionError(f"no replica of {among} leads within {timeout_s} s")


@pytest.fixture(scope="module")
def cluster(demo_dir: Path) -> Iterator[Cluster]:
    tool("haproxy")  # skipped (or failed in CI) before anything is built
    with readable_dir("zs-cluster-") as tmp, fresh_database(migrate=False) as url:
        root = copy_demo_city(demo_dir, tmp / "city")
        shutil.rmtree(root / "tokens", ignore_errors=True)
        # as deploy/systemd/replica.env: behind the balancer every wire client is on loopback
        env = {"ZHONGSHU_STORE_URL": url, "ZHONGSHU_PG_REQUIRE_TLS": "true"}
        tokens = set_up(root, env, ("cockpit-city", "data-bureau"))
        ports = [free_port() for _ in range(3)]
        wire_ports = [free_port() for _ in range(3)]
        replicas: list[HubProcess | None] = [None] * 3

        def start(i: int) -> None:  # the three start together, as after a deploy
            replicas[i] = HubProcess(root, ports[i], "serve", "--no-watch", "--pg-port",
                                     str(wire_ports[i]), env=env)

        threads = [threading.Thread(target=start, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        started = [r for r in replicas if r is not None]
        lb_port, lb_wire = free_port(), free_port()
        lb_env = {"ZHONGSHU_LB_HTTP": f"127.0.0.1:{lb_port}",
                  "ZHONGSHU_LB_WIRE": f"127.0.0.1:{lb_wire}",
                  **{f"ZHONGSHU_REPLICA_{i + 1}": f"127.0.0.1:{p}" for i, p in enumerate(ports)},
                  **{f"ZHONGSHU_REPLICA_{i + 1}_WIRE": f"127.0.0.1:{p}"
                     for i, p in enumerate(wire_ports)}}
        lb_log = open(tmp / "haproxy.log", "ab")
        try:
            with haproxy(lb_env, log=lb_log):
                assert len(started) == 3, "a replica did not start"
                lb_url = f"http://127.0.0.1:{lb_port}"
                deadline = time.monotonic() + 30
                while True:  # every replica marked up (rise 2, every second)
                    try:
                        if all(httpx.get(f"{r.url}/readyz").status_code == 200
                               for r in started) \
                                and httpx.get(f"{lb_url}/readyz").status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    assert time.monotonic() < deadline, (tmp / "haproxy.log").read_text()
                    time.sleep(0.2)
                time.sleep(2.5)
                yield Cluster(root, url, env, started, lb_url, lb_wire, tokens)
        finally:
            lb_log.close()
            for r in started:
                if r.proc.poll() is None:
                    r.stop()
                else:
                    r.log.close()


def _oracle(root: Path) -> list[list[Any]]:
    """The answer read from the department's own file, without the hub."""
    path = root / "data" / "traffic-police.sqlite"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        return [list(r) for r in con.execute(
            "SELECT district, count(*) FROM checkpoints GROUP BY 1 ORDER BY 1")]


@dataclass
class Outcomes:
    answered: list[dict[str, Any]] = field(default_factory=list)  # receipts
    failed: list[str] = field(default_factory=list)
    wrong: list[Any] = field(default_factory=list)
    done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _load(lb: str, token: str, expect: list[list[Any]], out: Outcomes) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=lb, headers=headers, timeout=60) as c:
        for _ in range(QUERIES):
            try:
                r = c.post("/v1/query", json={"sql": SQL, "purpose": P})
            except httpx.TransportError as e:  # a closed connection
                with out.lock:
                    out.failed.append(f"closed: {type(e).__name__}")
                    out.done += 1
                continue
            with out.lock:
                out.done += 1
                if r.status_code == 200:
                    j = r.json()
                    if j["rows"] != expect:
                        out.wrong.append(j["rows"])
                    out.answered.append(j["receipt"])
                elif r.status_code == 503 and \
                        r.json()["error"]["code"] == "replica_unavailable":
                    out.failed.append("503 replica_unavailable")
                else:
                    out.wrong.append((r.status_code, r.text[:300]))


def _kill(cluster: Cluster, i: int) -> list[int]:
    """SIGKILL replica ``i`` (its process alone, as the kernel's OOM killer would); return its
    children at that moment."""
    proc = cluster.replicas[i].proc
    children = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    cluster.replicas[i].log.close()
    cluster.killed.append(i)
    return children


def test_killing_replicas_under_load_loses_no_acknowledged_receipt(cluster: Cluster) -> None:
    expect = _oracle(cluster.root)
    assert expect and sum(n for _, n in expect) > 0
    out = Outcomes()
    clients = [threading.Thread(target=_load, args=(cluster.lb, cluster.tokens["cockpit-city"],
                                                    expect, out)) for _ in range(CLIENTS)]
    for t in clients:
        t.start()
    total = CLIENTS * QUERIES
    try:
        leader, _ = cluster.leader([0, 1, 2], 10)
        while out.done < total // 3:
            time.sleep(0.01)
        orphans = _kill(cluster, leader)  # the replica that signs, mid-load
        rest = [i for i in range(3) if i != leader]
        new_leader, moved_s = cluster.leader(rest, 10)
        print(f"lease moved from replica {leader} to {new_leader} in {moved_s:.2f} s")
        assert moved_s < 5
        while out.done < 2 * total // 3:
            time.sleep(0.01)
        orphans += _kill(cluster, rest[0] if rest[0] != new_leader else rest[1])
    finally:
        for t in clients:
            t.join(300)
    deadline = time.monotonic() + 15
    while any(_alive(p) for p in orphans):  # its sequencer and workers end with it
        assert time.monotonic() < deadline, [p for p in orphans if _alive(p)]
        time.sleep(0.1)

    print(f"{len(out.answered)} answered, {len(out.failed)} failed ({sorted(set(out.failed))})")
    assert not out.wrong, out.wrong[:3]
    assert out.done == total
    # at most the requests inside each killed replica: one per client per kill
    assert len(out.failed) <= 2 * CLIENTS, out.failed
    indices = [r["index"] for r in out.answered]
    assert len(set(indices)) == len(indices)  # no index handed out twice

    (survivor,) = [i for i in range(3) if i not in cluster.killed]
    hub = cluster.replicas[survivor].url
    assert_all_proved(hub, out.answered)  # by a checkpoint the new leader signed
    v = zs("ledger", "verify", "--dir", str(cluster.root), env=cluster.env)
    assert v.returncode == 0, v.stdout + v.stderr


def test_the_wire_endpoint_behind_the_balancer_reaches_a_live_replica(cluster: Cluster
                                                                     ) -> None:
    """After the kills above (or without them), a BI client connecting to the balancer's
    wire port is sent to a replica that is up (the wire servers track the HTTP checks)."""
    import psycopg

    expect = _oracle(cluster.root)
    login = {"host": "127.0.0.1", "port": cluster.lb_wire, "user": "cockpit-city",
             "password": cluster.tokens["cockpit-city"], "dbname": P, "connect_timeout": 10}
    for _ in range(6):  # leastconn spreads the connections: each lands on a live replica
        with psycopg.connect(**login, sslmode="require") as conn:
            assert [list(r) for r in conn.execute(SQL).fetchall()] == expect
    # the balancer's connections come from loopback: a token in clear is still refused
    with pytest.raises(psycopg.OperationalError) as e:
        psycopg.connect(**login, sslmode="disable").close()
    assert "needs TLS" in str(e.value)
