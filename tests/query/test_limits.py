"""Time limits hold for planning too, and no query runs on the event loop (issue 15, class 5).

The heavy shapes are generated (a fixed seed): long chains of comparisons, CASE branches,
IN lists, UNION ALL arms, select lists and nested arithmetic, each exactly 99,000 characters
— under the 100,000-character cap, and each one minutes of planning without a deadline
(sqlglot and the firewall's rules are superlinear on several of them). Margins are for a
loaded 2-core machine: a deadline that regressed to unbounded planning overshoots them by
tens of seconds.
"""

from __future__ import annotations

import gc
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.conftest import RunningHub
from zhongshu.errors import QueryTimeout, QueryTooLarge
from zhongshu.policy.identity import Caller
from zhongshu.query.deadline import Deadline
from zhongshu.query.service import MAX_SQL_CHARS, QueryService

P = "city-operations"
SIZE = 99_000


def slop_s() -> float:
    """Scheduling on a loaded machine, on top of what the hub promises: half a second, more
    when more runs than there are cores (the load average over a minute)."""
    return 0.5 * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


COLS = ("passage_id", "speed_kmh")
CAMS = ("camera_id", "vehicle_type")


def _fill(head: str, part: Callable[[random.Random, int], str], tail: str, seed: int) -> str:
    """``head`` + generated parts + ``tail``, padded with spaces to exactly ``SIZE``."""
    rng = random.Random(seed)
    out, size, i = [head], len(head) + len(tail), 0
    while True:
        p = part(rng, i)
        if size + len(p) > SIZE:
            break
        out.append(p)
        size += len(p)
        i += 1
    sql = "".join(out) + tail
    return sql + " " * (SIZE - len(sql))


def _cmp(rng: random.Random, i: int) -> str:
    if rng.random() < 0.5:
        return f"{rng.choice(COLS)} {rng.choice(('=', '<>', '<', '>='))} {i}"
    return f"{rng.choice(CAMS)} {rng.choice(('=', '<>'))} 'c{i}'"


FROM = " FROM traffic.passages"
SHAPES: dict[str, Callable[[int], str]] = {
    "or_chain": lambda s: _fill("SELECT count(*) AS n" + FROM + " WHERE ",
                                lambda r, i: _cmp(r, i) + " OR ", "false", s),
    "and_or": lambda s: _fill("SELECT count(*) AS n" + FROM + " WHERE ",
                              lambda r, i: f"({_cmp(r, i)} AND {_cmp(r, i + 1)}) OR ", "false",
                              s),
    "case": lambda s: _fill("SELECT CASE ", lambda r, i: f"WHEN {_cmp(r, i)} THEN {i} ",
                            "END AS c" + FROM, s),
    "in_list": lambda s: _fill("SELECT count(*) AS n" + FROM + " WHERE passage_id IN (",
                               lambda r, i: f"{r.randrange(10**6)}, ", "0)", s),
    "union_all": lambda s: _fill("SELECT passage_id" + FROM,
                                 lambda r, i: f" UNION ALL SELECT passage_id{FROM} WHERE "
                                              f"{_cmp(r, i)}", "", s),
    "select_list": lambda s: _fill("SELECT ", lambda r, i: f"{r.choice(COLS)} + {i} AS c{i}, ",
                                   "1 AS z" + FROM, s),
    "nested_terms": lambda s: _fill("SELECT count(*) AS n" + FROM + " WHERE 0 < ",
                                    lambda r, i: "abs(" * (d := r.randrange(4, 16))
                                    + f"{r.choice(COLS)} - {i}" + ")" * d + " + ", "0", s),
}


def _shape(name: str, seed: int = 15) -> str:
    sql = SHAPES[name](seed)
    assert len(sql) == SIZE
    return sql


def test_shapes_are_exactly_the_size() -> None:
    for name in SHAPES:
        assert len(_shape(name)) == SIZE < MAX_SQL_CHARS


# --- the mechanism ------------------------------------------------------------------------


def test_bounding_interrupts_pure_python_at_the_deadline() -> None:
    d = Deadline(0.3)
    t0 = time.monotonic()
    def forever() -> None:
        while True:
            pass

    with pytest.raises(QueryTimeout):
        d.bounded(forever)
    assert time.monotonic() - t0 < 0.3 + slop_s()


def test_bounding_leaves_nothing_pending() -> None:
    """Sections that end just as their deadline fires (300 of them, seeded timings) never
    leave an interrupt to be raised later in the same thread."""
    rng = random.Random(15)
    outcomes = set()
    for _ in range(300):
        d = Deadline(rng.uniform(0.001, 0.010))
        end = time.monotonic() + rng.uniform(0.0, 0.020)

        def spin(until: float = end) -> None:
            while time.monotonic() < until:
                pass

        try:
            d.bounded(spin)
            outcomes.add("finished")
        except QueryTimeout:
            outcomes.add("interrupted")
    end = time.monotonic() + 0.2
    while time.monotonic() < end:  # a stray interrupt would be raised here
        sum(range(100))
    assert outcomes == {"finished", "interrupted"}


@pytest.mark.timeout(60)  # a regression would run forever
def test_an_interrupt_swallowed_is_raised_again() -> None:
    """Interrupts swallowed — by a garbage-collector callback running Python code (as
    hypothesis installs one), or by code that catches everything — do not let the section run
    on: it is interrupted again, and nothing is raised in the thread after it ends."""
    calls = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        calls.append(sum(range(50)))  # Python code, where an interrupt can land

    def cycles_forever() -> None:
        while True:
            a: list[object] = []
            a.append(a)  # garbage only the collector frees: its callback runs often

    def swallowing() -> None:
        for _ in range(3):
            try:
                cycles_forever()
            except BaseException:  # what careless code does
                pass
        cycles_forever()

    gc.callbacks.append(on_gc)
    try:
        for fn in (cycles_forever, swallowing):
            t0 = time.monotonic()
            with pytest.raises(QueryTimeout):
                Deadline(0.2).bounded(fn)
            assert time.monotonic() - t0 < 0.2 + 0.5 + slop_s(), fn.__name__
    finally:
        gc.callbacks.remove(on_gc)
    assert calls
    end = time.monotonic() + 0.3
    while time.monotonic() < end:  # a stray interrupt would be raised here
        sum(range(100))


# --- the service --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_heavy_shape_times_out_in_planning(service: QueryService, name: str) -> None:
    who = Caller(service.catalog.members["cockpit-city"])
    sql = _shape(name)
    limit = 1.0
    t0 = time.monotonic()
    with pytest.raises(QueryTimeout):
        service.run(who, sql, P, deadline=Deadline(limit))
    # the hub's promise is the limit + 1 s: interrupted at the limit, then the tree of a
    # 99 kB query is freed (measured up to 0.6 s under a load average of 20)
    assert time.monotonic() - t0 < limit + 1.0
    # nothing was cached for the shape, and the service answers at once afterwards
    t1 = time.monotonic()
    assert service.run(who, "SELECT count(*) AS n FROM traffic.segments", P).num_rows == 1
    assert time.monotonic() - t1 < 5


def test_over_the_cap_is_query_too_large(service: QueryService) -> None:
    who = Caller(service.catalog.members["cockpit-city"])
    sql = "SELECT 1 AS x FROM traffic.segments" + " " * MAX_SQL_CHARS
    for call in (service.run, service.explain, service.plan):
        with pytest.raises(QueryTooLarge) as e:
            call(who, sql, P)
        assert e.value.status == 413 and e.value.code == "query_too_large"
    # exactly the cap is accepted
    ok = "SELECT 1 AS x FROM traffic.segments LIMIT 1"
    assert service.run(who, ok + " " * (MAX_SQL_CHARS - len(ok)), P).num_rows == 1


# --- over HTTP ------------------------------------------------------------------------------

LIMIT_S = 2.0


@pytest.fixture
def limited_hub(own_hub_factory: Callable[..., RunningHub], monkeypatch: pytest.MonkeyPatch
                ) -> RunningHub:
    monkeypatch.setenv("ZHONGSHU_QUERY_TIMEOUT_S", str(LIMIT_S))
    running = own_hub_factory()
    assert running.service.settings.query_timeout_s == LIMIT_S
    return running


@pytest.fixture
def client(limited_hub: RunningHub) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=limited_hub.url, timeout=60, headers={
            "Authorization": f"Bearer {limited_hub.token('cockpit-city')}"}) as c:
        yield c


def test_http_heavy_shapes_answer_504_within_the_limit(client: httpx.Client) -> None:
    """The promise: an answer within the limit, or 504 by the limit + 1 s. The shapes are
    built to outlast 2 s of planning, but on a quiet machine one may finish in time (a
    14,000-value IN list did, once): that is an answer, not a failure — most must not."""
    timeouts = 0
    for name in sorted(SHAPES):
        t0 = time.monotonic()
        r = client.post("/v1/query", json={"sql": _shape(name), "purpose": P})
        elapsed = time.monotonic() - t0
        assert r.status_code in (200, 504), (name, r.text[:200])
        if r.status_code == 200:
            assert elapsed < LIMIT_S + slop_s(), (name, elapsed)
            continue
        timeouts += 1
        assert r.json()["error"]["code"] == "query_timeout"
        assert elapsed < LIMIT_S + 1.0 + slop_s(), (name, elapsed)
    assert timeouts >= len(SHAPES) - 2, timeouts
    # the same connection answers at once afterwards
    assert client.get("/v1/catalog").status_code == 200


def test_http_over_the_cap_is_413(client: httpx.Client) -> None:
    sql = "SELECT 1 AS x FROM traffic.segments" + " " * MAX_SQL_CHARS
    for path in ("/v1/query", "/v1/query/explain"):
        r = client.post(path, json={"sql": sql, "purpose": P})
        assert r.status_code == 413, r.text[:200]
        assert r.json()["error"]["code"] == "query_too_large"
        assert "100,000" in r.json()["error"]["message"]


BURST = r"""
import json, sys, threading, time
import httpx
url, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
clients = [httpx.Client(base_url=url, timeout=30, headers={"Authorization": "Bearer " + token})
           for _ in range(n)]
for c in clients:  # connected and authenticated before the burst
    assert c.get("/v1/catalog").status_code == 200
print("ready", flush=True)
sys.stdin.readline()
start, out = threading.Barrier(n), [0.0] * n
def one(i):
    start.wait()
    t0 = time.monotonic()
    assert clients[i].get("/v1/catalog").status_code == 200
    out[i] = time.monotonic() - t0
threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(out), flush=True)
"""


class Burst:
    """``n`` concurrent ``GET /v1/catalog`` from another process (as real clients are: the
    test process is the hub's, and its threads would share the hub's interpreter lock),
    each on its own keep-alive connection, connected and authenticated beforehand."""

    def __init__(self, url: str, token: str, n: int = 20) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", BURST, url, token, str(n)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def fire(self) -> list[float]:
        """Seconds each request took."""
        out, _ = self.proc.communicate("go\n", timeout=60)
        latencies: list[float] = json.loads(out.strip().splitlines()[-1])
        return latencies

    def close(self) -> None:
        """Stop it, if it was not fired."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)


SLOW = {  # a plan that is slow to build (the GIL-bound case), and a run that is slow
    "planning": lambda: _shape("or_chain"),
    "running": lambda: "SELECT count(*) AS n FROM traffic.passages a, traffic.passages b, "
                       "traffic.passages c, traffic.passages d",
}


@pytest.mark.parametrize("kind", sorted(SLOW))
def test_catalog_answers_while_a_slow_query_runs(
        own_hub_factory: Callable[..., RunningHub], monkeypatch: pytest.MonkeyPatch,
        kind: str) -> None:
    monkeypatch.setenv("ZHONGSHU_QUERY_TIMEOUT_S", "8")
    running = own_hub_factory()
    token = running.token("cockpit-city")
    sql = SLOW[kind]()
    outcome: dict[str, int] = {}

    def slow() -> None:
        r = httpx.post(f"{running.url}/v1/query", json={"sql": sql, "purpose": P},
                       headers={"Authorization": f"Bearer {token}"}, timeout=60)
        outcome["status"] = r.status_code

    idle = sorted(Burst(running.url, token).fire())
    ready = [Burst(running.url, token) for _ in range(3)]
    t = threading.Thread(target=slow)
    t.start()
    time.sleep(1.0)  # well inside its planning or running
    # up to three bursts while it runs, the best counts: other sessions' load on a shared
    # machine delays some bursts, a blocked event loop delays every one by seconds
    bursts = []
    try:
        for b in ready:
            bursts.append(b.fire())
            if max(bursts[-1]) < 0.2:
                break
    finally:
        for b in ready:
            b.close()
    still_running = t.is_alive()
    t.join(30)
    assert still_running, "the slow query finished before the burst; it proves nothing"
    assert outcome["status"] == 504
    assert min(max(b) for b in bursts) < 0.2, ([sorted(b) for b in bursts], "idle:", idle)
