"""Encoding answers: Arrow → the protocol's JSON rows, or an Arrow IPC stream.

Every Arrow type an answer can hold has one JSON form here (the columns DuckDB cannot export
faithfully were cast to text before they ran: ``query.types``). Python's ``date`` and
``datetime`` stop at years 1–9999 and microseconds, DuckDB does not, so dates, times and
intervals are written from Arrow's integers wherever Python's types cannot hold them —
in exactly the form ``orjson`` writes for the values Python can hold:

============================  =============================================================
DuckDB type                   JSON value
============================  =============================================================
DATE                          ``"2024-05-01"``; years outside 0–9999 ``"+294247-01-10"``,
                              ``"-000043-03-15"`` (ECMAScript's expanded years: year 0 is
                              1 BC, -43 is 44 BC); ``"infinity"``, ``"-infinity"``
TIMESTAMP[_S|_MS|_NS]         ``"2024-05-01T08:30:00"``, ``".123456"`` when the microseconds
                              are not 0, ``".123456789"`` when the nanoseconds are not;
                              the same expanded years; ``"infinity"``, ``"-infinity"``
TIMESTAMP WITH TIME ZONE      the same with the offset, ``"2024-05-01T08:30:00+00:00"``
TIME, TIME_NS                 ``"08:30:00"``, ``".123456"``, ``".123456789"`` as above
                              (``.010000``: orjson 3.13 wrote ``.10000`` before)
INTERVAL                      ISO 8601 duration as PostgreSQL's ``iso_8601`` style writes it:
                              ``"P1Y2M3DT4H5M6.5S"``, a sign on each negative part
                              (``"P-1M"``), ``"PT0S"`` for zero
DECIMAL, HUGEINT              a string of the exact decimal, ``"12.50"``
BLOB                          lowercase hex, ``"aabb"``
UUID, ENUM, JSON, VARCHAR     a string
LIST, ARRAY                   an array; STRUCT an object; MAP an array of ``[key, value]``
                              pairs (keys need not be strings, nor unique); UNION the value of
                              its member
TIME WITH TIME ZONE, BIT,     DuckDB's text form (cast before the query ran):
BIGNUM, UHUGEINT, GEOMETRY,   ``"12:00:00+05:30"``, ``"10101"``, ``"POINT (1 2)"``
VARIANT
============================  =============================================================

Floats are written as ECMAScript writes them (NaN and infinities as ``null``); the rows are
RFC 8785 canonical, the bytes the ledger hashes. RFC 8785 has no form for an integer beyond
±(2⁵³ − 1), and JavaScript clients would lose its digits: in an answer where a 64-bit integer
column (or one nesting such integers) holds one, every integer of that column is sent as a
string (``"18446744073709551615"``), and the column says ``"encoding": "string"`` beside its
SQL ``type``.

Column types are named by DuckDB itself (:func:`type_names`: the Arrow schema read back by
DuckDB, once per schema), so the JSON answer, the Arrow one and the catalog speak the same
names.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from zhongshu.errors import TypeNotSupported
from zhongshu.ledger import canonical

if TYPE_CHECKING:  # the client's commands encode answers too, without the hub's duckdb
    import duckdb

_DESCRIBE = threading.Lock()


@lru_cache(maxsize=1024)
def _described(schema: pa.Schema) -> tuple[str, ...]:
    with _DESCRIBE:  # one small in-memory database for every lookup
        con = _describer()
        rel = con.from_arrow(pa.RecordBatchReader.from_batches(schema, []))
        return tuple(str(t) for t in rel.types)


@lru_cache(maxsize=1)
def _describer() -> duckdb.DuckDBPyConnection:
    import duckdb

    return duckdb.connect(config={"enable_external_access": False,
                                  "autoinstall_known_extensions": False,
                                  "autoload_known_extensions": False})


def type_names(schema: pa.Schema) -> list[str]:
    """DuckDB's names of the types of ``schema``'s columns: DuckDB reads the (empty) Arrow
    stream and says (cached per schema).

    >>> type_names(pa.schema([("a", pa.uint8()), ("s", pa.struct([("K", pa.int32())]))]))
    ['UTINYINT', 'STRUCT(K INTEGER)']
    """
    return list(_type_names(schema))


@lru_cache(maxsize=1024)
def _type_names(schema: pa.Schema) -> tuple[str, ...]:
    # keyed by the schema as it comes (one hash), not by a copy made per call
    return _described(schema.remove_metadata())


def columns(schema: pa.Schema, strings: frozenset[int] | set[int] = frozenset()
            ) -> list[dict[str, str]]:
    """``[{"name", "type"}]`` of a result; ``"encoding": "string"`` on the columns at
    ``strings`` (whose integers travel as strings: :func:`answer`)."""
    return [{"name": f.name, "type": t, **({"encoding": "string"} if i in strings else {})}
            for i, (f, t) in enumerate(zip(schema, type_names(schema), strict=True))]


def table_rows(table: pa.Table) -> list[list[Any]]:
    """A table's rows as lists of JSON-ready Python values (see the module's table).

    Raises:
        TypeNotSupported: a column of a type with no JSON form here, named.
    """
    cols = [json_values(c, f.name) for c, f in zip(table.columns, table.schema, strict=True)]
    return [list(r) for r in zip(*cols, strict=True)] if cols else []


def _children(t: pa.DataType) -> list[pa.DataType]:
    if pa.types.is_map(t):
        return [t.key_type, t.item_type]
    if isinstance(t, pa.DictionaryType):
        return [t.value_type]
    if pa.types.is_nested(t):
        return [t.field(i).type for i in range(t.num_fields)]
    return []


def _has(t: pa.DataType, leaf: Callable[[pa.DataType], bool]) -> bool:
    return leaf(t) or any(_has(c, leaf) for c in _children(t))


def _has_float(t: pa.DataType) -> bool:
    return _has(t, pa.types.is_floating)


def _exact(t: pa.DataType) -> bool:
    """Whether values of ``t`` are written from Arrow's integers rather than through
    ``to_pylist`` (temporal types, whose range and precision exceed Python's; and times of
    day, which orjson 3.13 writes wrongly: ``00:00:00.10000`` for 10,000 µs)."""
    return bool(pa.types.is_date(t) or pa.types.is_timestamp(t) or pa.types.is_time(t)
                or t == pa.month_day_nano_interval() or pa.types.is_duration(t))


def _supported(t: pa.DataType) -> bool:
    return (pa.types.is_null(t) or pa.types.is_boolean(t) or pa.types.is_integer(t)
            or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_string(t)
            or pa.types.is_large_string(t) or pa.types.is_binary(t)
            or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)
            or pa.types.is_time(t) or _exact(t) or pa.types.is_list(t)
            or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
            or pa.types.is_struct(t) or pa.types.is_map(t)
            or pa.types.is_union(t) and t.mode == "sparse"
            or isinstance(t, pa.DictionaryType))


# --- the exact forms --------------------------------------------------------------------

_INF32, _INF64 = 2**31 - 1, 2**63 - 1  # DuckDB's infinite dates and timestamps
_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
_DAY_NS = 86_400 * 10**9


def civil(days: int) -> tuple[int, int, int]:
    """(year, month, day) of the proleptic Gregorian day ``days`` after 1970-01-01.

    >>> civil(0), civil(-1), civil(19_844)
    ((1970, 1, 1), (1969, 12, 31), (2024, 5, 1))
    """
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def date_text(days: int) -> str:
    """A DATE's JSON form.

    >>> date_text(19_844), date_text(2**31 - 1), date_text(-719_820)
    ('2024-05-01', 'infinity', '-000001-03-15')
    """
    if abs(days) == _INF32:
        return "infinity" if days > 0 else "-infinity"
    y, m, d = civil(days)
    year = f"{y:04d}" if 0 <= y <= 9999 else f"{'+' if y > 0 else '-'}{abs(y):06d}"
    return f"{year}-{m:02d}-{d:02d}"


def _fraction(ns: int) -> str:
    if ns % 1000:
        return f".{ns:09d}"
    return f".{ns // 1000:06d}" if ns else ""


def time_text(ns: int) -> str:
    """A time of day's JSON form, from nanoseconds since midnight.

    >>> time_text(30_600 * 10**9), time_text(1_500), time_text(5_000)
    ('08:30:00', '00:00:00.000001500', '00:00:00.000005')
    """
    s, frac = divmod(ns, 10**9)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}{_fraction(frac)}"


def timestamp_text(value: int, unit: str, tz: str | None = None) -> str:
    """A TIMESTAMP's JSON form, from Arrow's integer in ``unit`` (zoned: in UTC).

    >>> timestamp_text(0, "s"), timestamp_text(1_500, "ns", "UTC")
    ('1970-01-01T00:00:00', '1970-01-01T00:00:00.000001500+00:00')
    >>> timestamp_text(2**63 - 1, "us"), timestamp_text(-(2**63 - 1), "ms")
    ('infinity', '-infinity')
    """
    if abs(value) == _INF64:
        return "infinity" if value > 0 else "-infinity"
    days, ns = divmod(value * _NS[unit], _DAY_NS)
    return f"{date_text(days)}T{time_text(ns)}{'+00:00' if tz else ''}"


def interval_text(months: int, days: int, ns: int) -> str:
    """An INTERVAL's JSON form: ISO 8601, as PostgreSQL's ``iso_8601`` style writes it.

    >>> interval_text(14, 3, (4 * 3600 + 5 * 60 + 6) * 10**9 + 5 * 10**8)
    'P1Y2M3DT4H5M6.5S'
    >>> interval_text(-1, 0, -90 * 10**9), interval_text(0, 0, 0)
    ('P-1MT-1M-30S', 'PT0S')
    """
    years = int(months / 12)
    parts = [f"{v}{u}" for v, u in ((years, "Y"), (months - 12 * years, "M"), (days, "D"))
             if v]
    sign = "-" if ns < 0 else ""
    s, frac = divmod(abs(ns), 10**9)
    clock = [f"{sign}{v}{u}" for v, u in ((s // 3600, "H"), (s // 60 % 60, "M")) if v]
    if s % 60 or frac:
        sec = f"{s % 60}.{frac:09d}".rstrip("0") if frac else str(s % 60)
        clock.append(f"{sign}{sec}S")
    if not parts and not clock:
        return "PT0S"
    return "P" + "".join(parts) + ("T" + "".join(clock) if clock else "")


def _ints(arr: pa.Array, to: pa.DataType) -> list[int | None]:
    values: list[int | None] = arr.view(to).to_pylist()
    return values


def _exact_values(arr: pa.Array) -> list[Any]:
    """A temporal array's JSON forms, from its integers (any range, any precision)."""
    t = arr.type
    if pa.types.is_date32(t):
        return [None if v is None else date_text(v) for v in _ints(arr, pa.int32())]
    if pa.types.is_date64(t):
        return [None if v is None else date_text(v // 86_400_000)
                for v in _ints(arr, pa.int64())]
    if pa.types.is_timestamp(t):
        return [None if v is None else timestamp_text(v, t.unit, t.tz)
                for v in _ints(arr, pa.int64())]
    if pa.types.is_time(t):
        ints = _ints(arr, pa.int64() if pa.types.is_time64(t) else pa.int32())
        return [None if v is None else time_text(v * _NS[t.unit]) for v in ints]
    if pa.types.is_duration(t):
        return [None if v is None else interval_text(0, 0, v * _NS[t.unit])
                for v in _ints(arr, pa.int64())]
    out: list[Any] = []
    for v in arr.to_pylist():
        out.append(None if v is None else interval_text(v.months, v.days, v.nanoseconds))
    return out


def _values(arr: pa.Array) -> list[Any]:
    """An array's JSON-ready values (``arr``'s own offset and nulls respected)."""
    t = arr.type
    if not _has(t, _exact) and not (pa.types.is_map(t) and _has_float(t)):
        return list(arr.to_pylist())
    if _exact(t):
        if pa.types.is_date(t) or pa.types.is_timestamp(t) and t.unit != "ns":
            try:  # Python holds it: orjson writes it (the exact forms are the same bytes)
                return list(arr.to_pylist())
            except (OverflowError, ValueError):
                pass
        return _exact_values(arr)
    if isinstance(t, pa.DictionaryType):
        return _values(arr.dictionary_decode())
    valid = arr.is_valid().to_pylist() if arr.null_count else None
    out: list[Any]
    if pa.types.is_struct(t):
        fields = [_values(f) for f in arr.flatten()]
        names = [t.field(i).name for i in range(t.num_fields)]
        out = [dict(zip(names, row, strict=True)) for row in zip(*fields, strict=True)] \
            if fields else [{} for _ in range(len(arr))]
    elif pa.types.is_map(t):
        offsets = arr.offsets.to_pylist()
        keys, items = _values(arr.keys), _values(arr.items)
        out = [[[keys[j], items[j]] for j in range(offsets[i], offsets[i + 1])]
               for i in range(len(arr))]
    elif pa.types.is_fixed_size_list(t):
        size = t.list_size
        flat = _values(arr.values.slice(arr.offset * size, len(arr) * size))
        out = [flat[i * size:(i + 1) * size] for i in range(len(arr))]
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        offsets = arr.offsets.to_pylist()
        flat = _values(arr.values)
        out = [flat[offsets[i]:offsets[i + 1]] for i in range(len(arr))]
    elif pa.types.is_union(t):  # sparse (dense ones are refused: DuckDB writes none)
        # pyarrow slices a sparse union's children but not its type codes: read each
        # row's code from its scalar, its value from the (sliced) child
        position = {c: i for i, c in enumerate(t.type_codes)}
        children = [_values(arr.field(i)) for i in range(t.num_fields)]
        out = [children[position[arr[i].type_code]][i] for i in range(len(arr))]
    else:
        raise AssertionError(f"unhandled Arrow type {t}")
    if valid is not None:
        out = [v if ok else None for v, ok in zip(out, valid, strict=True)]
    return out


def json_values(column: pa.ChunkedArray | pa.Array, name: str) -> list[Any]:
    """A column's values in their JSON form (see the module's table): Python values that
    ``rows_json`` writes canonically.

    Raises:
        TypeNotSupported: ``column``'s type has no JSON form here (``name`` in the message).
    """
    if not _has(column.type, lambda t: not _supported(t)):
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        return [v for chunk in chunks for v in _values(chunk)]
    import duckdb

    try:
        named = type_names(pa.schema([("v", column.type)]))[0]
    except duckdb.Error:  # a type DuckDB cannot read either
        named = str(column.type)
    raise TypeNotSupported(f"column `{name}` has type {named}, which the "
                           "hub cannot encode; cast it to VARCHAR (`CAST(… AS VARCHAR)`)")


def _default(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    raise TypeError(f"cannot encode {type(v).__name__}")


def _wide(t: pa.DataType) -> bool:
    return bool(pa.types.is_int64(t) or pa.types.is_uint64(t))


def _too_big(v: Any) -> bool:
    if isinstance(v, int) and not isinstance(v, bool):
        return not -canonical.MAX_SAFE <= v <= canonical.MAX_SAFE
    if isinstance(v, list):
        return any(_too_big(x) for x in v)
    if isinstance(v, dict):
        return any(_too_big(x) for x in v.values())
    return False


def _as_strings(v: Any) -> Any:
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if isinstance(v, list):
        return [_as_strings(x) for x in v]
    if isinstance(v, dict):
        return {k: _as_strings(x) for k, x in v.items()}
    return v


@lru_cache(maxsize=1024)
def _column_kinds(schema: pa.Schema) -> tuple[list[int], list[int], list[int]]:
    """Per schema, once: the columns that may hold floats, 64-bit integers, nested values
    (callers only read the lists)."""
    return ([i for i, f in enumerate(schema) if _has_float(f.type)],
            [i for i, f in enumerate(schema) if _has(f.type, _wide)],
            [i for i, f in enumerate(schema) if _children(f.type)])


def answer(rows: list[list[Any]], schema: pa.Schema | None = None
           ) -> tuple[bytes, frozenset[int]]:
    """The JSON ``rows`` array in RFC 8785 canonical form (one array per row, times as ISO
    8601, decimals as strings, floats as ECMAScript writes them), and the positions of the
    columns whose integers it sends as strings (one of them is beyond ±(2⁵³ − 1)).

    These are the exact bytes the answer carries and whose SHA-256 the ledger records, so
    anyone can re-canonicalize the parsed ``rows`` and compare. Which columns may hold
    floats, nested values or 64-bit integers is read from ``schema`` (from the values when
    it is not given).

    >>> answer([[1, 2**63 - 1], [2, None]], pa.schema([("a", pa.int64()), ("b", pa.int64())]))
    (b'[[1,"9223372036854775807"],[2,null]]', frozenset({1}))
    """
    width = len(rows[0]) if rows else 0
    if schema is None:
        floats = wide = list(range(width))
        nested = [i for i in range(width)
                  if any(isinstance(r[i], (list, dict)) for r in rows)]
    else:
        floats, wide, nested = _column_kinds(schema)
    strings = frozenset(i for i in wide if any(_too_big(r[i]) for r in rows))
    if strings:
        rows = [[_as_strings(v) if i in strings else v for i, v in enumerate(r)]
                for r in rows]
    ints = [i for i in wide if i not in strings and i not in nested]
    payload = canonical.rows(rows, floats, default=_default, nested_columns=nested,
                             int_columns=[] if schema is None else ints)
    return payload, strings


def rows_json(rows: list[list[Any]], schema: pa.Schema | None = None) -> bytes:
    """The bytes of :func:`answer` (the canonical JSON ``rows``)."""
    return answer(rows, schema)[0]


def arrow_ipc(table: pa.Table) -> bytes:
    """The table as an Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data
