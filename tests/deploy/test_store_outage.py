"""The hub's PostgreSQL store goes away and comes back (as in a failover: every connection
cut, then the same address answers again), while a hub on it answers queries.

Cut with a TCP proxy between the hub and the shared server (never stopping the server):
while the store is away no data query is answered — each fails with a 503 and no receipt,
none hangs past its time limit — and ``/readyz`` says unready; once it is back the hub
answers again without a restart, its sequencer holds the lease again, every receipt given
before and after is in the log, and ``ledger verify`` passes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningHub, copy_demo_city, readable_dir
from tests.deploy.proofs import assert_all_proved
from tests.stores.pg import fresh_database
from zhongshu.config import StoreSettings, load_city
from zhongshu.node import Node

pytestmark = [pytest.mark.server, pytest.mark.slow]
P = "city-operations"
SQL = "SELECT district, count(*) AS n FROM traffic.checkpoints GROUP BY 1 ORDER BY 1"


class Proxy:
    """A TCP proxy to 127.0.0.1:5432 on a port of its own, which can be cut (every
    connection closed, new ones closed at once) and restored."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut_off = False
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut_off:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", 5432), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            with self._lock:
                self._open -= {src, dst}

    def cut(self) -> None:
        self.cut_off = True
        with self._lock:
            for s in list(self._open):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def restore(self) -> None:
        self.cut_off = False

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture(scope="module")
def outage(demo_dir: Path) -> Iterator[tuple[RunningHub, Proxy, str, Path]]:
    with readable_dir("zs-outage-") as tmp, fresh_database() as direct:
        proxy = Proxy()
        url = direct.replace(":5432/", f":{proxy.port}/")
        root = copy_demo_city(demo_dir, tmp / "city")
        city = load_city(root).model_copy(update={"store": StoreSettings(url=url)})
        node = Node.open(city, serve=True, monitor=False)
        hub = RunningHub(node, root)
        try:
            yield hub, proxy, url, root
        finally:
            hub.stop()
            node.close()
            proxy.close()


def _query(c: httpx.Client) -> httpx.Response:
    return c.post("/v1/query", json={"sql": SQL, "purpose": P})


def _until(check: object, timeout_s: float, what: str) -> float:
    t0 = time.monotonic()
    while not check():  # type: ignore[operator]
        assert time.monotonic() - t0 < timeout_s, what
        time.sleep(0.1)
    return time.monotonic() - t0


def test_the_hub_answers_nothing_unrecorded_while_its_store_is_away_and_recovers(
        outage: tuple[RunningHub, Proxy, str, Path]) -> None:
    hub, proxy, url, root = outage
    token = hub.token("cockpit-city")
    operator = {"Authorization": f"Bearer {hub.token('data-bureau')}"}
    receipts = []
    with httpx.Client(base_url=hub.url, timeout=60,
                      headers={"Authorization": f"Bearer {token}"}) as c:
        for _ in range(5):
            r = _query(c)
            assert r.status_code == 200, r.text
            receipts.append(r.json()["receipt"])
        expect = r.json()["rows"]

        proxy.cut()
        t0 = time.monotonic()
        during = []
        while time.monotonic() - t0 < 8:
            t = time.monotonic()
            r = _query(c)
            during.append((r.status_code, time.monotonic() - t))
            assert r.status_code != 200 or r.json()["rows"] == expect
            if r.status_code == 200:  # answered: then it was recorded, with a receipt
                receipts.append(r.json()["receipt"])
            else:
                assert r.status_code == 503, r.text
                assert "receipt" not in r.json()
        codes = [s for s, _ in during]
        print(f"store away 8 s: {len(codes)} queries, {codes.count(503)} refused (503), "
              f"{codes.count(200)} answered; slowest {max(d for _, d in during):.1f} s")
        assert codes.count(503) >= 1 and codes[-1] == 503  # it noticed, and says so
        # none waits for the store: the breaker fails calls at once, the sequencer waits
        # at most WAIT_S (3 s) for a connection, twice on the worst path
        assert max(d for _, d in during) < 10
        assert httpx.get(f"{hub.url}/readyz").status_code == 503
        assert httpx.get(f"{hub.url}/livez").status_code == 200

        proxy.restore()
        back = _until(lambda: _query(c).status_code == 200, 60, "the hub did not recover")
        print(f"store back: answering again after {back:.1f} s")
        _until(lambda: httpx.get(f"{hub.url}/readyz").status_code == 200, 30, "not ready")
        for _ in range(5):
            r = _query(c)
            assert r.status_code == 200 and r.json()["rows"] == expect, r.text
            receipts.append(r.json()["receipt"])
        _until(lambda: httpx.get(f"{hub.url}/v1/health", headers=operator).json()[
            "ledger"].get("sequencer") == "leading", 30, "the lease was not taken again")

    indices = [r["index"] for r in receipts]
    assert len(set(indices)) == len(indices)
    assert_all_proved(hub.url, receipts)  # before and after the outage
    v = subprocess.run([sys.executable, "-m", "zhongshu.cli", "ledger", "verify", "--dir",
                        str(root)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "ZHONGSHU_STORE_URL": url})
    assert v.returncode == 0, v.stdout + v.stderr
