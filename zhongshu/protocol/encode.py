"""Encoding answers: Arrow → the protocol's JSON rows, or an Arrow IPC stream."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pyarrow as pa

from zhongshu.ledger import canonical


def duckdb_type(t: pa.DataType) -> str:
    """The DuckDB type name the protocol reports for an Arrow type."""
    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_int32(t):
        return "INTEGER"
    if pa.types.is_int16(t):
        return "SMALLINT"
    if pa.types.is_int8(t):
        return "TINYINT"
    if pa.types.is_unsigned_integer(t):
        return "UBIGINT" if t.bit_width == 64 else "UINTEGER"
    if pa.types.is_float64(t):
        return "DOUBLE"
    if pa.types.is_float32(t):
        return "FLOAT"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "VARCHAR"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP WITH TIME ZONE" if t.tz else "TIMESTAMP"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_time(t):
        return "TIME"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "BLOB"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return duckdb_type(t.value_type) + "[]"
    return str(t).upper()


def _default(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    raise TypeError(f"cannot encode {type(v).__name__}")


def columns(schema: pa.Schema) -> list[dict[str, str]]:
    """``[{"name", "type"}]`` of a result."""
    return [{"name": f.name, "type": duckdb_type(f.type)} for f in schema]


def table_rows(table: pa.Table) -> list[list[Any]]:
    """A table's rows as lists of Python values."""
    cols = [c.to_pylist() for c in table.columns]
    return [list(r) for r in zip(*cols, strict=True)] if cols else []


def _has_float(t: pa.DataType) -> bool:
    if pa.types.is_floating(t):
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _has_float(t.value_type)
    if pa.types.is_struct(t):
        return any(_has_float(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_map(t):
        return _has_float(t.item_type)
    return False


def rows_json(rows: list[list[Any]], schema: pa.Schema | None = None) -> bytes:
    """The JSON ``rows`` array in RFC 8785 canonical form: one array per row, times as ISO
    8601, decimals as strings, floats as ECMAScript writes them.

    These are the exact bytes the answer carries and whose SHA-256 the ledger records, so
    anyone can re-canonicalize the parsed ``rows`` and compare. Columns that may hold
    floats are found from ``schema`` (every column when it is not given).
    """
    if schema is None:
        floats = list(range(len(rows[0]))) if rows else []
    else:
        floats = [i for i, f in enumerate(schema) if _has_float(f.type)]
    return canonical.rows(rows, floats, default=_default)


def arrow_ipc(table: pa.Table) -> bytes:
    """The table as an Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data
