"""Whole-column ``DataRow`` encoding (``pgwire.columns``) against the value-by-value one.

The oracle is the path the wire endpoint took before: the answer's canonical JSON (the bytes
the ledger hashes) decoded again and each value encoded by ``pgwire.types`` — whose forms
``test_types.py`` checks against a real PostgreSQL and whose messages against pygwire's.
Generated tables of every column type an answer holds, with NULLs, non-finite and integral
floats, far years and sub-second times, must give the same bytes in text and binary.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zhongshu.protocol import encode
from zhongshu.protocol.pgwire import columns
from zhongshu.protocol.pgwire import types as t


def oracle(table: pa.Table, formats: list[int]) -> bytes:
    json_rows = orjson.loads(encode.answer(encode.table_rows(table), table.schema)[0])
    encoders = [t.encoder(t.oid_of(f.type), fmt) for f, fmt in zip(table.schema, formats,
                                                                   strict=True)]
    return t.data_rows(json_rows, encoders)


def whole(table: pa.Table, formats: list[int]) -> bytes:
    json_rows = orjson.loads(encode.answer(encode.table_rows(table), table.schema)[0])
    return columns.data_rows(table, [t.oid_of(f.type) for f in table.schema], formats,
                             lambda i: [r[i] for r in json_rows])


_US = st.integers(-62_135_596_800_000_000, 253_402_300_799_999_999)
_FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                    st.integers(-10**17, 10**17).map(float),
                    st.sampled_from([0.0, -0.0, 55.0, 1e15, 1e16, 1e21, 5e-324, 0.1 + 0.2,
                                     2.0**63, -2.0**63, 2.0**64, -2.0**64 - 4096]))

#: Arrow type → values of it (None among them: NULL)
COLUMNS: dict[str, tuple[pa.DataType, st.SearchStrategy[Any]]] = {
    "bool": (pa.bool_(), st.booleans()),
    "int8": (pa.int8(), st.integers(-128, 127)),
    "int16": (pa.int16(), st.integers(-2**15, 2**15 - 1)),
    "int32": (pa.int32(), st.integers(-2**31, 2**31 - 1)),
    "int64": (pa.int64(), st.integers(-2**63, 2**63 - 1)),
    "uint8": (pa.uint8(), st.integers(0, 255)),
    "uint32": (pa.uint32(), st.integers(0, 2**32 - 1)),
    "uint64": (pa.uint64(), st.integers(0, 2**64 - 1)),
    "float32": (pa.float32(), st.floats(width=32)),
    "float64": (pa.float64(), _FLOATS),
    "string": (pa.string(), st.text()),
    "large_string": (pa.large_string(), st.text(max_size=5)),
    "date32": (pa.date32(), st.integers(-719_162, 2_932_896)),
    "ts_s": (pa.timestamp("s"), st.integers(-62_135_596_800, 253_402_300_799)),
    "ts_ms": (pa.timestamp("ms"), st.integers(-62_135_596_800_000, 253_402_300_799_999)),
    "ts_us": (pa.timestamp("us"), st.one_of(_US, st.sampled_from([2**63 - 1, -(2**63 - 1)]))),
    "ts_ns": (pa.timestamp("ns"), st.integers(-2**62, 2**62)),
    "ts_tz": (pa.timestamp("us", "UTC"), _US),
    "decimal": (pa.decimal128(10, 2), st.decimals(-10**7, 10**7, places=2, allow_nan=False)),
    "binary": (pa.binary(), st.binary(max_size=6)),
    "list": (pa.list_(pa.int32()), st.lists(st.integers(-5, 5), max_size=3)),
    "time": (pa.time64("us"), st.integers(0, 86_399_999_999)),
}


def _array(kind: str, values: list[Any]) -> pa.Array:
    typ, _ = COLUMNS[kind]
    if kind.startswith("ts_") or kind in ("date32", "time"):
        storage = pa.int32() if kind == "date32" else pa.int64()
        return pa.array(values, storage).cast(typ)
    return pa.array(values, typ)


@st.composite
def tables(draw: st.DrawFn) -> tuple[pa.Table, list[int]]:
    kinds = draw(st.lists(st.sampled_from(sorted(COLUMNS)), min_size=1, max_size=5))
    n = draw(st.integers(1, 12))
    arrays = []
    for kind in kinds:
        values = draw(st.lists(st.one_of(st.none(), COLUMNS[kind][1]), min_size=n,
                               max_size=n))
        arrays.append(_array(kind, values))
    table = pa.Table.from_arrays(arrays, names=[f"c{i}" for i in range(len(kinds))])
    return table, draw(st.lists(st.sampled_from([0, 1]), min_size=len(kinds),
                                max_size=len(kinds)))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_whole_columns_give_the_value_by_value_bytes(case: tuple[pa.Table, list[int]]) -> None:
    table, formats = case
    assert whole(table, formats) == oracle(table, formats)


@pytest.mark.parametrize("fmt", [0, 1])
@pytest.mark.parametrize("binary_max", [columns.BINARY_MAX, 0])
def test_a_sliced_chunked_answer_gives_its_rows_bytes(fmt: int, binary_max: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A portal sends its rows in slices (``max_rows``) of a chunked table; an answer over
    2 GiB is laid out in Arrow's ``large_binary`` (forced here with a 0-byte bound)."""
    monkeypatch.setattr(columns, "BINARY_MAX", binary_max)
    part = pa.table({"id": pa.array(range(5), pa.int64()),
                     "s": pa.array(["a", None, "ccc", "", "é"]),
                     "at": pa.array([dt.datetime(2026, 11, 24, 8, 0, s, s * 7)
                                     for s in range(5)], pa.timestamp("us")),
                     "v": pa.array([1.5, None, float("nan"), 3.0, -0.0])})
    table = pa.concat_tables([part, part])
    for start, length in ((0, 10), (3, 4), (7, 3)):
        piece = table.slice(start, length)
        assert whole(piece, [fmt] * 4) == oracle(piece.combine_chunks(), [fmt] * 4)


def test_columns_with_no_whole_form_are_read_from_the_json_values() -> None:
    table = pa.table({"d": pa.array([Decimal("1.50"), None], pa.decimal128(5, 2)),
                      "n": pa.array([2**64 - 1, 0], pa.uint64())})
    asked: list[int] = []
    json_rows = orjson.loads(encode.answer(encode.table_rows(table), table.schema)[0])

    def values(i: int) -> list[Any]:
        asked.append(i)
        return [r[i] for r in json_rows]

    got = columns.data_rows(table, [t.NUMERIC, t.NUMERIC], [0, 0], values)
    assert asked == [0, 1]
    assert got == oracle(table, [0, 0])


def test_far_years_and_infinities_in_binary_are_postgresqls() -> None:
    """Beyond the years 1–9999 the value-by-value path has no binary form (Python's
    datetime stops there); the whole-column one sends PostgreSQL's: µs (days) since
    2000-01-01, and its infinities for DuckDB's."""
    us = [253_402_300_800_000_000, -62_135_596_800_000_001, 2**63 - 1, -(2**63 - 1), None]
    table = pa.table({"at": pa.array(us, pa.int64()).cast(pa.timestamp("us"))})
    want = [None if v is None else 2**63 - 1 if v == 2**63 - 1 else -2**63
            if v == -(2**63 - 1) else v - 946_684_800_000_000 for v in us]
    values = [None if w is None else w.to_bytes(8, "big", signed=True) for w in want]
    assert whole(table, [1]) == t.data_rows([[v] for v in values], [lambda b: b])
    # the text form of those is the JSON answer's (``+10000-…``, ``infinity``), as before
    assert whole(table, [0]) == oracle(table, [0])
    days = [2_932_897, -719_163, 2**31 - 1, -(2**31 - 1), None]
    table = pa.table({"on": pa.array(days, pa.int32()).cast(pa.date32())})
    want = [None if d is None else 2**31 - 1 if d == 2**31 - 1 else -2**31
            if d == -(2**31 - 1) else d - 10_957 for d in days]
    values = [None if w is None else w.to_bytes(4, "big", signed=True) for w in want]
    assert whole(table, [1]) == t.data_rows([[v] for v in values], [lambda b: b])
    assert whole(table, [0]) == oracle(table, [0])
