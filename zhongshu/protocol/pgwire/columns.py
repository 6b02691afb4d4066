"""``DataRow`` messages built from an answer's Arrow columns, whole columns at a time.

:func:`data_rows` gives the same bytes as :func:`zhongshu.protocol.pgwire.types.data_rows`
over the answer's JSON values (what the wire endpoint sent before, value by value), but the
common columns are encoded by Arrow and NumPy and the messages are laid out in one NumPy
buffer: a 10,000-row answer costs a few milliseconds, not tens. The columns it has no
whole-column form for (nested values, decimals, times, intervals, zoned timestamps, values
outside the years 1–9999…) are encoded value by value from the answer's JSON values, by
the same encoders as before, so every column is exactly what it was:

=================================  ================================  ======================
Arrow column                       text form                         binary form
=================================  ================================  ======================
bool                               ``t`` / ``f``                     one byte
int8 … int64, uint8 … uint32       decimal digits (Arrow's cast)     big-endian (NumPy)
float32, float64                   the JSON answer's number          big-endian (NumPy)
string, large_string               the UTF-8 bytes themselves        the same
date32                             ``YYYY-MM-DD`` (NumPy digits)     days since 2000-01-01
timestamp[s|ms|us] without zone    ``YYYY-MM-DD HH:MM:SS[.ffffff]``  µs since 2000-01-01
=================================  ================================  ======================

Floats that are not finite are NULL and ``-0`` is ``0``, as in the JSON answer the ledger
hashes. Binary dates and timestamps of any year are sent (DuckDB's infinities as
PostgreSQL's), where the value-by-value path had none beyond the year 9999.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from zhongshu.ledger import canonical
from zhongshu.protocol.pgwire import types as t

#: one column's encoding: each row's length (-1: NULL) and the non-NULL values' bytes, in
#: row order
Encoded = tuple[np.ndarray, np.ndarray]

_EPOCH_2000_S = 946_684_800  # 2000-01-01 in Unix seconds
_EPOCH_2000_DAYS = 10_957
_US = {"s": 1_000_000, "ms": 1_000, "us": 1}
#: the instants of the years 1–9999 in µs since 1970 (Python's and Arrow's common range)
_MIN_US, _MAX_US = -62_135_596_800_000_000, 253_402_300_799_999_999
_MIN_DAY, _MAX_DAY = -719_162, 2_932_896
_DUCK_INF_US, _DUCK_INF_DAY = 2**63 - 1, 2**31 - 1  # DuckDB's infinities (and their negation)
_FAR = 2**62  # µs: ±146,000 years, no overflow
#: rows from which an answer is encoded whole columns at a time: below, the value-by-value
#: path is quicker (each whole column costs ~0.1 ms however short; measured on the demo's
#: passages, text and binary break even near 500 rows)
WHOLE_FROM_ROWS = 500
BINARY_MAX = 2**31  # bytes an Arrow ``binary`` array holds (beyond: ``large_binary``)


def data_rows(table: pa.Table, oids: Sequence[int], formats: Sequence[int],
              values: Callable[[int], list[Any]]) -> bytes:
    """The ``DataRow`` messages of every row of ``table``, in one buffer.

    ``formats``: each column's format code (0 text, 1 binary). ``values(i)``: the JSON
    values of column ``i`` for these rows, asked only for a column with no whole-column
    form here.
    """
    n = table.num_rows
    if n == 0:
        return b""
    encoded = []
    for i, (column, oid, fmt) in enumerate(zip(table.columns, oids, formats, strict=True)):
        arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        got = _column(arr, oid, fmt)
        if got is None:
            got = _per_value(values(i), t.encoder(oid, fmt))
        encoded.append(got)
    return _layout(n, encoded)


def _layout(n: int, encoded: list[Encoded]) -> bytes:
    """The messages: ``'D'``, length, column count, then each column's length and bytes —
    joined row by row by Arrow's ``binary_join_element_wise`` (one C++ pass)."""
    sizes = [np.maximum(lens, 0) for lens, _ in encoded]
    body = 2 + 4 * len(encoded) + np.sum(sizes, axis=0)
    head = np.empty((n, 7), dtype=np.uint8)
    head[:, 0] = ord("D")
    head[:, 1:5] = _be(body + 4, ">i4")
    head[:, 5:7] = np.frombuffer(np.array([len(encoded)], dtype=">i2").tobytes(), np.uint8)
    large = int(np.sum(body)) + 5 * n >= BINARY_MAX
    kind, offset = (pa.large_binary(), np.int64) if large else (pa.binary(), np.int32)
    parts: list[Any] = [_binary(head, kind)]
    for (lens, data), size in zip(encoded, sizes, strict=True):
        parts.append(_binary(_be(lens, ">i4"), kind))
        offsets = np.zeros(n + 1, dtype=offset)
        np.cumsum(size, out=offsets[1:])
        parts.append(pa.Array.from_buffers(kind, n, [None, pa.py_buffer(offsets),
                                                     pa.py_buffer(data)]))
    joined = pc.binary_join_element_wise(*parts, pa.scalar(b"", kind))
    ends = np.frombuffer(joined.buffers()[1], dtype=offset)
    return memoryview(joined.buffers()[2])[ends[0]:ends[n]].tobytes()


def _be(values: np.ndarray, width: str) -> np.ndarray:
    """Each value big-endian, one row of bytes each."""
    raw = np.ascontiguousarray(values.astype(width))
    return raw.view(np.uint8).reshape(len(values), -1)


def _binary(rows: np.ndarray, kind: pa.DataType) -> pa.Array:
    """Rows of bytes (one width) as an Arrow binary array of ``kind``."""
    fixed = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(rows.shape[1]), len(rows), [None, pa.py_buffer(np.ascontiguousarray(rows))])
    return fixed.cast(kind)


def _column(arr: pa.Array, oid: int, fmt: int) -> Encoded | None:
    """A column's whole-column encoding, or None when it has none here."""
    typ = arr.type
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return _strings(arr) if oid in (t.TEXT, t.VARCHAR, t.NAME) else None
    if pa.types.is_boolean(typ) and oid == t.BOOL:
        if fmt == 0:
            return _strings(pc.if_else(arr, "t", "f"))
        return _fixed(arr, arr.fill_null(False).to_numpy(zero_copy_only=False)
                      .astype(np.uint8))
    if pa.types.is_integer(typ) and oid in (t.INT2, t.INT4, t.INT8):
        if fmt == 0:
            return _strings(pc.cast(arr, pa.string()))
        width = {t.INT2: ">i2", t.INT4: ">i4", t.INT8: ">i8"}[oid]
        return _fixed(arr, arr.fill_null(0).to_numpy().astype(width))
    if pa.types.is_floating(typ) and not pa.types.is_float16(typ) and oid in (t.FLOAT4,
                                                                              t.FLOAT8):
        return _floats(arr, oid, fmt)
    if pa.types.is_date32(typ) and oid == t.DATE:
        days = arr.cast(pa.int32())
        ds = days.fill_null(0).to_numpy().astype(np.int64)
        if fmt == 1:  # any day; DuckDB's infinities PostgreSQL's
            since = np.where(ds == _DUCK_INF_DAY, t.INF_DAY, np.where(
                ds == -_DUCK_INF_DAY, t.NINF_DAY, ds - _EPOCH_2000_DAYS))
            return _fixed(arr, since.astype(">i4"))
        if not _within(days, _MIN_DAY, _MAX_DAY):
            return None  # infinities and far years: their JSON values, one by one
        chars = np.empty((len(ds), 10), dtype=np.uint8)
        chars[:, 4] = chars[:, 7] = ord("-")
        _date_into(chars, ds)
        return _texts(arr, chars, np.full(len(ds), 10))
    if pa.types.is_timestamp(typ) and typ.tz is None and typ.unit in _US and oid == t.TIMESTAMP:
        return _timestamps(arr, _US[typ.unit], fmt)
    return None


def _within(ints: pa.Array, low: int, high: int) -> bool:
    bounds = pc.min_max(ints)
    lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
    return lo is None or (low <= lo and hi <= high)


def _timestamps(arr: pa.Array, per_unit_us: int, fmt: int) -> Encoded | None:
    raw = arr.cast(pa.int64())
    if fmt == 1:
        return _timestamps_binary(arr, raw, per_unit_us)
    if not _within(raw, _MIN_US // per_unit_us, _MAX_US // per_unit_us):
        return None  # infinities and far years: their JSON values, one by one
    us = raw.fill_null(0).to_numpy() * per_unit_us
    days, micros = np.divmod(us, 86_400_000_000)
    seconds, micros = np.divmod(micros, 1_000_000)
    hours, seconds = np.divmod(seconds, 3600)
    minutes, seconds = np.divmod(seconds, 60)
    chars = np.empty((len(us), 26), dtype=np.uint8)
    chars[:] = np.frombuffer(b"0000-00-00 00:00:00.000000", dtype=np.uint8)
    _date_into(chars, days)
    for at, part in ((11, hours), (14, minutes), (17, seconds), (20, micros // 10_000),
                     (22, micros // 100 % 100), (24, micros % 100)):
        chars[:, at:at + 2] = _PAIRS[part]
    return _texts(arr, chars, np.where(micros != 0, 26, 19))


def _timestamps_binary(arr: pa.Array, raw: pa.Array, per_unit_us: int) -> Encoded | None:
    """µs since 2000-01-01, any year; DuckDB's infinities (µs only) PostgreSQL's."""
    values = raw.fill_null(0).to_numpy()
    if per_unit_us == 1:
        inf, ninf = values == _DUCK_INF_US, values == -_DUCK_INF_US
    else:
        inf = ninf = np.zeros(len(values), dtype=bool)
    finite = np.where(inf | ninf, 0, values)
    if finite.size and np.abs(finite).max() >= _FAR // per_unit_us:
        return None  # beyond any calendar PostgreSQL has: their JSON values, one by one
    us = finite * per_unit_us - _EPOCH_2000_S * 1_000_000
    return _fixed(arr, np.where(inf, t.INF_TS, np.where(ninf, t.NINF_TS, us)).astype(">i8"))


def _date_into(chars: np.ndarray, days: np.ndarray) -> None:
    """Write ``YYYY-MM-DD`` of days since 1970 (years 1–9999) into the first ten
    characters of each row: the proleptic Gregorian calendar's civil date (H. Hinnant's
    ``civil_from_days``)."""
    z = days + 719_468
    era = np.floor_divide(z, 146_097)
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    for at, part in ((0, year // 100), (2, year % 100), (5, month), (8, day)):
        chars[:, at:at + 2] = _PAIRS[part]


#: "00" … "99" as ASCII pairs, looked up by value
_PAIRS = np.array([[48 + i // 10, 48 + i % 10] for i in range(100)], dtype=np.uint8)


def _texts(arr: pa.Array, chars: np.ndarray, widths: np.ndarray) -> Encoded:
    """Rows of characters, each cut at its width; NULL where ``arr`` is."""
    keep = np.arange(chars.shape[1])[None, :] < widths[:, None]
    lens = widths.astype(np.int64)
    if arr.null_count:
        valid = ~_nulls(arr)
        keep &= valid[:, None]
        lens = np.where(valid, lens, -1)
    return lens, chars[keep]


def _floats(arr: pa.Array, oid: int, fmt: int) -> Encoded:
    raw = arr.fill_null(0).to_numpy(zero_copy_only=False)
    finite = np.isfinite(raw)
    if arr.null_count:
        finite &= ~_nulls(arr)
    values = np.where(raw == 0, 0.0, raw.astype(np.float64))  # the JSON answer has no -0
    if fmt == 1:
        lens = np.where(finite, 4 if oid == t.FLOAT4 else 8, -1).astype(np.int64)
        width = ">f4" if oid == t.FLOAT4 else ">f8"
        return lens, values[finite].astype(width).view(np.uint8)
    wide = values[finite]
    if np.any((np.abs(wide) >= 1e16) & (wide == np.trunc(wide))):
        return _per_value([_float_text(v) if ok else None
                           for v, ok in zip(values.tolist(),
                                            finite.tolist(), strict=True)], None)
    # below 10¹⁶ Python's repr of an integral double is "55.0": the JSON answer's is "55"
    texts = list(map(repr, wide.tolist()))
    sizes = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    data = np.frombuffer("".join(texts).encode(), dtype=np.uint8)
    integral = wide == np.trunc(wide)
    if integral.any():
        ends = np.cumsum(sizes)[integral]
        data = np.delete(data, np.concatenate([ends - 2, ends - 1]))
        sizes[integral] -= 2
    lens = np.full(len(values), -1, dtype=np.int64)
    lens[finite] = sizes
    return lens, data


def _float_text(v: float) -> bytes:
    """The text of the JSON answer's value for a double. ECMAScript writes an integral
    double below 10²¹ as an integer (``55``; beyond 2⁵³ its shortest digits padded with
    zeros), which is read back as an integer when a 64-bit one holds it; any other is read
    back as the double, whose shortest form is Python's ``repr``."""
    if v.is_integer() and -1e21 < v < 1e21:
        digits = canonical.number(v)
        if -2**63 <= int(digits) < 2**64:
            return digits.encode()
    return repr(v).encode()


def _nulls(arr: pa.Array) -> np.ndarray:
    nulls: np.ndarray = arr.is_null().to_numpy(zero_copy_only=False)
    return nulls


def _fixed(arr: pa.Array, values: np.ndarray) -> Encoded:
    """A fixed-width column: ``values`` (one per row, big-endian), NULL where ``arr`` is."""
    width = values.dtype.itemsize
    if not arr.null_count:
        return np.full(len(values), width, dtype=np.int64), values.view(np.uint8)
    valid = ~_nulls(arr)
    return np.where(valid, width, -1).astype(np.int64), values[valid].view(np.uint8)


def _strings(arr: pa.Array) -> Encoded:
    """A string column's lengths and bytes, straight from Arrow's buffers."""
    nulls = _nulls(arr) if arr.null_count else None
    if nulls is not None:
        arr = arr.fill_null("")
    if pa.types.is_large_string(arr.type) and arr.nbytes < 2**31:
        arr = arr.cast(pa.string())
    kind = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets_buf, data_buf = arr.buffers()[1], arr.buffers()[2]
    offsets = np.frombuffer(offsets_buf, dtype=kind)[arr.offset:arr.offset + len(arr) + 1]
    lens = np.diff(offsets).astype(np.int64)
    if nulls is not None:
        lens[nulls] = -1
    data = (np.frombuffer(data_buf, dtype=np.uint8)[offsets[0]:offsets[-1]]
            if data_buf is not None else np.empty(0, dtype=np.uint8))
    return lens, data


def _per_value(values: list[Any], encode: Callable[[Any], bytes | None] | None) -> Encoded:
    """A column encoded value by value (``encode``: None when ``values`` are its bytes)."""
    raw = values if encode is None else [encode(v) for v in values]
    lens = np.fromiter((-1 if b is None else len(b) for b in raw), dtype=np.int64,
                       count=len(raw))
    joined = b"".join(b for b in raw if b is not None)
    return lens, np.frombuffer(joined, dtype=np.uint8)
