"""PostgreSQL types for the hub's answers, and their text and binary forms.

Every Arrow type an answer can hold maps to one PostgreSQL type a client decodes. The values
encoded are the JSON-ready values of the HTTP answer (``protocol.exchange.answer_rows``), so
the wire answer and the HTTP answer are the same values:

==========================  =============  ===============================================
hub (DuckDB) type           PostgreSQL     note
==========================  =============  ===============================================
BOOLEAN                     bool (16)
TINYINT, SMALLINT, UTINYINT int2 (21)
INTEGER, USMALLINT          int4 (23)
BIGINT, UINTEGER            int8 (20)
UBIGINT, HUGEINT, DECIMAL   numeric (1700)  exact
FLOAT / DOUBLE              float4 / float8
VARCHAR, UUID, ENUM …       text (25)
BLOB                        bytea (17)
DATE                        date (1082)     ``infinity`` kept
TIME                        time (1083)
TIMESTAMP[_S|_MS|_NS]       timestamp      (1114)
TIMESTAMP WITH TIME ZONE    timestamptz    (1184)
INTERVAL                    text (25)       the HTTP answer's ISO 8601 duration
LIST, STRUCT, MAP, UNION    json (114)      the HTTP answer's JSON value
==========================  =============  ===============================================

Binary forms exist for every type above (drivers such as asyncpg ask for them).
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa

BOOL, BYTEA, INT8, INT2, INT4, TEXT, JSON, FLOAT4, FLOAT8 = 16, 17, 20, 21, 23, 25, 114, 700, 701
DATE, TIME, TIMESTAMP, TIMESTAMPTZ, NUMERIC, UNKNOWN = 1082, 1083, 1114, 1184, 1700, 705
VARCHAR, NAME, OID, CHAR, INT2VECTOR, REGPROC = 1043, 19, 26, 18, 22, 24

#: type name, length (-1: variable) of the types the hub sends
TYPES: dict[int, tuple[str, int]] = {
    BOOL: ("bool", 1), BYTEA: ("bytea", -1), INT8: ("int8", 8), INT2: ("int2", 2),
    INT4: ("int4", 4), TEXT: ("text", -1), JSON: ("json", -1), FLOAT4: ("float4", 4),
    FLOAT8: ("float8", 8), DATE: ("date", 4), TIME: ("time", 8), TIMESTAMP: ("timestamp", 8),
    TIMESTAMPTZ: ("timestamptz", 8), NUMERIC: ("numeric", -1), VARCHAR: ("varchar", -1),
    NAME: ("name", 64), OID: ("oid", 4), CHAR: ("char", 1), UNKNOWN: ("unknown", -2),
}

#: SQL type spellings (the catalog's column types, DuckDB's and PostgreSQL's) → OID
_BY_NAME = {
    "BOOLEAN": BOOL, "BOOL": BOOL, "TINYINT": INT2, "SMALLINT": INT2, "UTINYINT": INT2,
    "INTEGER": INT4, "INT": INT4, "USMALLINT": INT4, "BIGINT": INT8, "UINTEGER": INT8,
    "UBIGINT": NUMERIC, "HUGEINT": NUMERIC, "UHUGEINT": NUMERIC, "DECIMAL": NUMERIC,
    "NUMERIC": NUMERIC, "FLOAT": FLOAT4, "REAL": FLOAT4, "DOUBLE": FLOAT8, "VARCHAR": TEXT,
    "TEXT": TEXT, "STRING": TEXT, "UUID": TEXT, "BLOB": BYTEA, "DATE": DATE, "TIME": TIME,
    "TIMESTAMP": TIMESTAMP, "DATETIME": TIMESTAMP, "TIMESTAMP_S": TIMESTAMP,
    "TIMESTAMP_MS": TIMESTAMP, "TIMESTAMP_NS": TIMESTAMP, "TIMESTAMPTZ": TIMESTAMPTZ,
    "TIMESTAMP WITH TIME ZONE": TIMESTAMPTZ, "INTERVAL": TEXT, "JSON": JSON,
}

#: how PostgreSQL's catalog spells each type (``format_type``, information_schema)
PG_SPELLING = {
    BOOL: "boolean", BYTEA: "bytea", INT8: "bigint", INT2: "smallint", INT4: "integer",
    TEXT: "text", JSON: "json", FLOAT4: "real", FLOAT8: "double precision", DATE: "date",
    TIME: "time without time zone", TIMESTAMP: "timestamp without time zone",
    TIMESTAMPTZ: "timestamp with time zone", NUMERIC: "numeric", VARCHAR: "character varying",
}


def oid_of_name(sql_type: str) -> int:
    """The OID for a SQL type name (``DECIMAL(10,2)``, ``VARCHAR[]``…; unknown: text).

    >>> oid_of_name("DECIMAL(10,2)"), oid_of_name("BIGINT"), oid_of_name("VARCHAR[]")
    (1700, 20, 114)
    """
    t = sql_type.strip().upper()
    if t.endswith("]") or t.startswith(("STRUCT", "MAP", "UNION", "LIST")):
        return JSON
    return _BY_NAME.get(t.split("(", 1)[0].strip(), TEXT)


def oid_of(t: pa.DataType) -> int:
    """The OID an Arrow column of an answer is sent as."""
    if pa.types.is_boolean(t):
        return BOOL
    if pa.types.is_integer(t):
        bits = t.bit_width + (1 if pa.types.is_unsigned_integer(t) else 0)
        return INT2 if bits <= 16 else INT4 if bits <= 32 else INT8 if bits <= 64 else NUMERIC
    if pa.types.is_decimal(t):
        return NUMERIC
    if pa.types.is_float32(t) or pa.types.is_float16(t):
        return FLOAT4
    if pa.types.is_floating(t):
        return FLOAT8
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return BYTEA
    if pa.types.is_date(t):
        return DATE
    if pa.types.is_time(t):
        return TIME
    if pa.types.is_timestamp(t):
        return TIMESTAMPTZ if t.tz else TIMESTAMP
    if pa.types.is_nested(t):
        return JSON
    if isinstance(t, pa.DictionaryType):
        return oid_of(t.value_type)
    return TEXT


# --- text -------------------------------------------------------------------------------------

def text(value: Any, oid: int) -> bytes | None:
    """The text form of one JSON-ready value as PostgreSQL writes it.

    >>> text(True, BOOL), text("2024-05-01T08:30:00", TIMESTAMP), text(b"\\x01", BYTEA)
    (b't', b'2024-05-01 08:30:00', b'\\\\x01')
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, (int, Decimal)):
        return str(value).encode()
    if isinstance(value, float):
        if value != value:
            return b"NaN"
        if value in (float("inf"), float("-inf")):
            return b"Infinity" if value > 0 else b"-Infinity"
        return repr(value).encode()
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ").encode()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat().encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return b"\\x" + bytes(value).hex().encode()
    if isinstance(value, list) and oid != JSON:  # a catalog array: PostgreSQL's text form
        return b"{" + b",".join(_array_item(v) for v in value) + b"}"
    if isinstance(value, str):
        if oid in (TIMESTAMP, TIMESTAMPTZ) and "T" in value:
            return value.replace("T", " ", 1).encode()
        if oid == BYTEA:  # the JSON answer's lowercase hex
            return b"\\x" + value.encode()
        return value.encode()
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def _array_item(v: Any) -> bytes:
    if v is None:
        return b"NULL"
    raw = text(v, TEXT) or b""
    if not raw or any(c in raw for c in b' ,{}"\\') or raw.upper() == b"NULL":
        return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return raw


# --- binary -----------------------------------------------------------------------------------

_EPOCH = dt.datetime(2000, 1, 1)
_EPOCH_TZ = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_EPOCH_DAY = dt.date(2000, 1, 1).toordinal()
#: PostgreSQL's infinite dates and timestamps in their binary forms
INF_DAY, NINF_DAY = 0x7FFFFFFF, -0x80000000
INF_TS, NINF_TS = 0x7FFFFFFFFFFFFFFF, -0x8000000000000000


def _parse_ts(v: Any, tz: bool) -> int:
    if isinstance(v, str):
        if v in ("infinity", "-infinity"):
            return INF_TS if v == "infinity" else NINF_TS
        v = dt.datetime.fromisoformat(_micro(v))
    if tz:
        if v.tzinfo is None:
            v = v.replace(tzinfo=dt.UTC)
        delta: dt.timedelta = v - _EPOCH_TZ
    else:
        delta = v.replace(tzinfo=None) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _micro(v: str) -> str:
    """An ISO text with nanoseconds cut to microseconds (Python's types stop there)."""
    dot = v.find(".")
    if dot < 0:
        return v
    end = dot + 1
    while end < len(v) and v[end].isdigit():
        end += 1
    return v[:min(end, dot + 7)] + v[end:]


def _date(v: Any) -> bytes:
    if isinstance(v, str):
        if v in ("infinity", "-infinity"):
            return struct.pack("!i", INF_DAY if v == "infinity" else NINF_DAY)
        v = dt.date.fromisoformat(v)
    return struct.pack("!i", v.toordinal() - _EPOCH_DAY)


def _time(v: Any) -> bytes:
    if isinstance(v, str):
        v = dt.time.fromisoformat(_micro(v))
    return struct.pack("!q", ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000
                       + v.microsecond)


def _numeric(v: Any) -> bytes:
    d = Decimal(str(v)) if not isinstance(v, Decimal) else v
    if d.is_nan():
        return struct.pack("!hhHH", 0, 0, 0xC000, 0)
    sign, digits, exp = d.as_tuple()
    assert isinstance(exp, int)
    dscale = max(-exp, 0)
    s = "".join(map(str, digits))
    if exp > 0:
        s += "0" * exp
        exp = 0
    s = s.rjust(1 - exp, "0")  # at least one digit before the point
    int_part, frac = (s[:len(s) + exp], s[len(s) + exp:]) if exp < 0 else (s, "")
    int_part = int_part.lstrip("0")
    int_part = "0" * (-len(int_part) % 4) + int_part
    frac = frac + "0" * (-len(frac) % 4)
    groups = [int(int_part[i:i + 4]) for i in range(0, len(int_part), 4)]
    weight = len(groups) - 1
    groups += [int(frac[i:i + 4]) for i in range(0, len(frac), 4)]
    while groups and groups[0] == 0:  # leading zero groups lower the weight
        groups.pop(0)
        weight -= 1
    while groups and groups[-1] == 0:
        groups.pop()
    if not groups:
        weight = 0
    return struct.pack(f"!hhHH{len(groups)}H", len(groups), weight,
                       0x4000 if sign else 0, dscale, *groups)


def _bytea(v: Any) -> bytes:
    return bytes.fromhex(v) if isinstance(v, str) else bytes(v)


def _float8(v: Any) -> bytes:
    return struct.pack("!d", float(v))


_BINARY: dict[int, Callable[[Any], bytes]] = {
    BOOL: lambda v: b"\x01" if v else b"\x00",
    INT2: lambda v: struct.pack("!h", int(v)),
    INT4: lambda v: struct.pack("!i", int(v)),
    INT8: lambda v: struct.pack("!q", int(v)),
    OID: lambda v: struct.pack("!I", int(v)),
    FLOAT4: lambda v: struct.pack("!f", float(v)),
    FLOAT8: _float8,
    NUMERIC: _numeric,
    DATE: _date,
    TIME: _time,
    TIMESTAMP: lambda v: struct.pack("!q", _parse_ts(v, False)),
    TIMESTAMPTZ: lambda v: struct.pack("!q", _parse_ts(v, True)),
    BYTEA: _bytea,
}


def binary(value: Any, oid: int) -> bytes | None:
    """The binary form of one JSON-ready value (text, varchar, name, json: their text).

    >>> binary(1, INT4), binary("2000-01-02", DATE)
    (b'\\x00\\x00\\x00\\x01', b'\\x00\\x00\\x00\\x01')
    >>> binary("12.50", NUMERIC).hex()  # groups 12 and 5000, weight 0, scale 2
    '0002000000000002000c1388'
    """
    if value is None:
        return None
    enc = _BINARY.get(oid)
    if enc is None:
        return text(value, oid)
    return enc(value)


def _fast_int_text(v: Any) -> bytes | None:
    return None if v is None else str(v).encode()


def _fast_str_text(v: Any) -> bytes | None:
    if v is None:
        return None
    return v.encode() if type(v) is str else text(v, TEXT)


def _fast_float_text(v: Any) -> bytes | None:
    if type(v) is float and v == v and v not in (_INF, -_INF):
        return repr(v).encode()
    return text(v, FLOAT8)


def _fast_ts_text(v: Any) -> bytes | None:
    if type(v) is str:
        return v.replace("T", " ", 1).encode()
    return text(v, TIMESTAMP)


_INF = float("inf")


def encoder(oid: int, fmt: int) -> Callable[[Any], bytes | None]:
    """The encoder of one column: text (``fmt`` 0) or binary (1); the common ones direct."""
    if fmt == 1:
        enc = _BINARY.get(oid)
        if enc is None:
            return _fast_str_text if oid in (TEXT, VARCHAR, NAME) else (
                lambda v: text(v, oid))
        return lambda v: None if v is None else enc(v)
    if oid in (INT2, INT4, INT8, OID):
        return _fast_int_text
    if oid in (TEXT, VARCHAR, NAME):
        return _fast_str_text
    if oid in (FLOAT4, FLOAT8):
        return _fast_float_text
    if oid in (TIMESTAMP, TIMESTAMPTZ):
        return _fast_ts_text
    return lambda v: text(v, oid)


_ROW_HEAD = struct.Struct("!cih")
_LEN = struct.Struct("!i")
_NULL = _LEN.pack(-1)


def data_rows(rows: list[list[Any]], encoders: list[Callable[[Any], bytes | None]]) -> bytes:
    """``DataRow`` messages for ``rows``, as one buffer (a message per row, written at once).

    The same bytes as pygwire's ``DataRow(columns=…).to_wire()`` (a test checks it), built
    here column by column without a message object per row: a 10,000-row answer is a few
    writes, not 10,000, and each column's values go through one encoder in one loop.

    >>> data_rows([[1, None]], [encoder(INT4, 0), encoder(TEXT, 0)])
    b'D\\x00\\x00\\x00\\x0f\\x00\\x02\\x00\\x00\\x00\\x011\\xff\\xff\\xff\\xff'
    """
    if not rows:
        return b""
    n = len(encoders)
    pack_len, head, null = _LEN.pack, _ROW_HEAD.pack, _NULL
    columns = []
    for enc, col in zip(encoders, zip(*rows, strict=True), strict=True):
        columns.append([null if b is None else pack_len(len(b)) + b
                        for b in map(enc, col)])
    out = []
    for parts in zip(*columns, strict=True):
        body = b"".join(parts)
        out.append(head(b"D", len(body) + 6, n))
        out.append(body)
    return b"".join(out)


def decode_param(raw: bytes | None, oid: int, fmt: int) -> Any:
    """A bound parameter's value (text or binary form) as a Python value."""
    if raw is None:
        return None
    if fmt == 0:
        s = raw.decode()
        if oid in (INT2, INT4, INT8, OID):
            return int(s)
        if oid in (FLOAT4, FLOAT8):
            return float(s)
        if oid == NUMERIC:
            return Decimal(s)
        if oid == BOOL:
            return s.lower() in ("t", "true", "1", "yes", "on")
        return s
    if oid == BOOL:
        return raw != b"\x00"
    if oid in (INT2, INT4, INT8):
        return int.from_bytes(raw, "big", signed=True)
    if oid == OID:
        return int.from_bytes(raw, "big", signed=False)
    if oid == FLOAT4:
        return struct.unpack("!f", raw)[0]
    if oid == FLOAT8:
        return struct.unpack("!d", raw)[0]
    if oid == DATE:
        return dt.date.fromordinal(int.from_bytes(raw, "big", signed=True) + _EPOCH_DAY)
    if oid in (TIMESTAMP, TIMESTAMPTZ):
        us = int.from_bytes(raw, "big", signed=True)
        return (_EPOCH_TZ if oid == TIMESTAMPTZ else _EPOCH) + dt.timedelta(microseconds=us)
    if oid == NUMERIC:
        return _decode_numeric(raw)
    if oid == BYTEA:
        return raw
    return raw.decode()


def _decode_numeric(raw: bytes) -> Decimal:
    n, weight, sign, dscale = struct.unpack("!hhHH", raw[:8])
    if sign == 0xC000:
        return Decimal("NaN")
    groups = struct.unpack(f"!{n}H", raw[8:8 + 2 * n])
    value = sum((Decimal(g) * (Decimal(10000) ** (weight - i)) for i, g in enumerate(groups)),
                Decimal(0))
    value = value.quantize(Decimal(1).scaleb(-dscale)) if dscale else value.quantize(Decimal(1))
    return -value if sign == 0x4000 else value
