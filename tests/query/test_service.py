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
