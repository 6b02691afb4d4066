"""The query service's own promises: plans are cached per query shape."""

from __future__ import annotations

from zhongshu.policy.identity import Caller
from zhongshu.query.service import QueryService

P = "city-operations"


def test_one_plan_per_query_shape(service: QueryService) -> None:
    """Literals compared with a column are parameters: another key reuses the plan (this
    is what keeps a point lookup in the sub-millisecond range)."""
    who = Caller(service.catalog.members["cockpit-city"])
    a, ta = service.plan(who, "SELECT * FROM traffic.passages WHERE passage_id = 5", P)
    b, tb = service.plan(who, "SELECT * FROM traffic.passages WHERE passage_id = 77", P)
    assert a is b and ta.key == tb.key
    rows = [service.execute(a, t).table.column("passage_id").to_pylist() for t in (ta, tb)]
    assert rows == [[5], [77]]
    c, _ = service.plan(who, "SELECT camera_id FROM traffic.passages WHERE passage_id = 5", P)
    assert c is not a
    other = Caller(service.catalog.members["cockpit-xihu"])
    d, _ = service.plan(other, "SELECT * FROM traffic.passages WHERE passage_id = 5",
                        "district-operations")
    assert d is not a


def test_quick_answers_measured_sqlite_lookups_inline_and_gives_way(
        service: QueryService) -> None:
    """A short query whose cached plan ran sub-millisecond on a SQLite file is answered on
    the calling thread, with the same rows as the DuckDB path; one whose source is at its
    concurrency cap is handed back (already charged) and is not quick any more."""
    caller = Caller(service.catalog.members["cockpit-city"])
    purpose = "city-operations"

    def sql(k: int) -> str:
        return f"SELECT passage_id, camera_id FROM traffic.passages WHERE passage_id = {k}"

    fresh = "SELECT camera_id FROM traffic.passages WHERE passage_id = 1 AND speed_kmh > -1"
    q = service.quick(caller, fresh, purpose, None, service.deadline())
    assert q.result is None and not q.charged
    for k in range(1, 6):
        service.run(caller, sql(k), purpose)
    q = service.quick(caller, sql(7), purpose, None, service.deadline())
    result = q.result
    assert result is not None and q.charged
    assert result.path == "native:traffic-police-db"
    oracle = service.run(caller, sql(7), purpose, engine="duckdb").table.to_pylist()
    assert result.table.to_pylist() == oracle
    src = service.catalog.sources["traffic-police-db"]
    held = 0
    try:
        while src._slots.acquire(False):
            held += 1
        q = service.quick(caller, sql(8), purpose, None, service.deadline())
        assert q.result is None and q.charged and q.found is not None
    finally:
        for _ in range(held):
            src._slots.release()
    q = service.quick(caller, sql(9), purpose, None, service.deadline())
    assert q.result is None and not q.charged
