"""The columnar fast path gives what the record-at-a-time path gives: the same records from
the same messages, the same windows from the same records (hypothesis draws the records:
nulls, ties, out-of-order and late events, a `where` filter, every measure)."""

from __future__ import annotations

import math
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from zhongshu.config import AggregateConfig, Column, StreamConfig
from zhongshu.streams import columnar
from zhongshu.streams.records import Reader
from zhongshu.streams.windows import Aggregate

COLUMNS = [Column(name="cam", type="VARCHAR"), Column(name="kind", type="VARCHAR"),
           Column(name="at", type="DOUBLE"), Column(name="speed", type="DOUBLE"),
           Column(name="lane", type="INTEGER"), Column(name="ok", type="BOOLEAN")]
MEASURES = {"n": "count(*)", "n_speed": "count(speed)", "total": "sum(speed)",
            "mean": "avg(speed)", "low": "min(lane)", "high": "max(speed)", "latest": "last(lane)",
            "latest_kind": "last(kind)"}
T0 = 1_795_000_000.0
ALL = {c.name: c.type for c in COLUMNS}

record = st.fixed_dictionaries({
    "cam": st.sampled_from(["c1", "c2", "c3"]),
    "kind": st.one_of(st.none(), st.sampled_from(["car", "bus"])),
    "at": st.integers(0, 900).map(lambda s: T0 + s / 2),
    "speed": st.one_of(st.none(), st.floats(0, 200, allow_nan=False)),
    "lane": st.one_of(st.none(), st.integers(1, 4)),
    "ok": st.one_of(st.none(), st.booleans()),
})


def _aggregate(where: str | None, lateness: int) -> Aggregate:
    cfg = AggregateConfig(dataset="t.w", stream="s", window_s=60, lateness_s=lateness,
                          group_by=["cam"], measures=MEASURES, where=where)
    return Aggregate(cfg, COLUMNS)


def _same(a: dict[Any, list[Any]], b: dict[Any, list[Any]]) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        for x, y in zip(a[k], b[k], strict=True):
            for u, v in zip(x, y, strict=True):
                if not (u == v or (isinstance(u, float) and isinstance(v, float)
                                   and math.isclose(u, v, rel_tol=1e-12, abs_tol=1e-9))):
                    return False
    return True


@settings(max_examples=150, deadline=None)
@given(batches=st.lists(st.lists(record, min_size=1, max_size=40), min_size=1, max_size=4),
       where=st.sampled_from([None, "ok"]), lateness=st.sampled_from([0, 30, 120]))
def test_columnar_fold_equals_record_fold(batches: list[list[dict[str, Any]]],
                                          where: str | None, lateness: int) -> None:
    slow, fast = _aggregate(where, lateness), _aggregate(where, lateness)
    types = {c.name: c.type for c in COLUMNS}
    for batch in batches:  # successive commits: the watermark carries over
        records = [(r["at"], dict(r)) for r in batch]
        want = slow.fold(records)
        got = fast.fold_columns(columnar.Columns.from_records(records, types))
        assert _same(got, want), (got, want)
        assert (fast.watermark, fast.late) == (slow.watermark, slow.late)


@settings(max_examples=100, deadline=None)
@given(batch=st.lists(record, min_size=1, max_size=30))
def test_columnar_read_equals_record_read(batch: list[dict[str, Any]]) -> None:
    stream = StreamConfig(name="s", kind="mqtt", topic="t", time_column="at", columns=COLUMNS)
    reader = Reader(stream)
    payload = orjson.dumps(batch)
    cols = columnar.read(payload, reader.columns, "at", reader.lookups, ALL)
    assert cols is not None
    assert cols.records() == reader.parse(payload).records


def test_values_not_already_of_their_type_take_the_record_path() -> None:
    stream = StreamConfig(name="s", kind="mqtt", topic="t", time_column="at", columns=COLUMNS)
    reader = Reader(stream)
    good = {"cam": "c1", "kind": "car", "at": T0, "speed": 50.0, "lane": 1, "ok": True}
    for bad in ({"lane": 1.5}, {"lane": True}, {"speed": True}, {"speed": "50"},
                {"cam": ""}, {"cam": 7}, {"at": None}, {"ok": 1}):
        payload = orjson.dumps([good, good | bad])
        # a bad value in a column no aggregate reads still makes the record a rejection
        for needed in (ALL, {"cam": "VARCHAR"}):
            assert columnar.read(payload, reader.columns, "at", reader.lookups,
                                 needed) is None, bad
    for junk in (b"not json", b"[1, 2]", b"[]", b'"text"'):
        assert columnar.read(junk, reader.columns, "at", reader.lookups, ALL) is None
