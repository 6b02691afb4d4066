"""Rows from a source's own driver → an Arrow table with the types DuckDB gives the query.

Drivers disagree on types (SQLite keeps times as text and booleans as integers, PostgreSQL
returns ``Decimal`` for sums); converting to one schema makes both paths' answers identical.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa


def _to_datetime(v: Any) -> Any:
    if isinstance(v, str):
        return datetime.fromisoformat(v)
    return v


def _to_date(v: Any) -> Any:
    if isinstance(v, str):
        return date.fromisoformat(v[:10])
    if isinstance(v, datetime):
        return v.date()
    return v


def _to_bool(v: Any) -> Any:
    return None if v is None else bool(v)


def _to_float(v: Any) -> Any:
    return None if v is None else float(v)


def _to_int(v: Any) -> Any:
    return None if v is None else int(v)


def _to_decimal(v: Any) -> Any:
    if v is None or isinstance(v, Decimal):
        return v
    return Decimal(str(v))


def _to_str(v: Any) -> Any:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, (bytes, bytearray)):
        return v.decode()
    return str(v)


def _coercer(t: pa.DataType) -> Callable[[Any], Any] | None:
    if pa.types.is_timestamp(t):
        return _to_datetime
    if pa.types.is_date(t):
        return _to_date
    if pa.types.is_boolean(t):
        return _to_bool
    if pa.types.is_floating(t):
        return _to_float
    if pa.types.is_integer(t):
        return _to_int
    if pa.types.is_decimal(t):
        return _to_decimal
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _to_str
    return None


# what each coercer produces: values already of these types go to Arrow as they are
_PYTHON_TYPES: dict[Callable[[Any], Any], type | tuple[type, ...]] = {
    _to_datetime: datetime, _to_date: date, _to_bool: bool, _to_float: float,
    _to_int: int, _to_decimal: Decimal, _to_str: str}


def rows_to_arrow(rows: Sequence[Sequence[Any]], schema: pa.Schema) -> pa.Table:
    """Build a table of ``schema`` from driver rows (positional, same column order)."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    arrays = []
    for values, f in zip(columns, schema, strict=True):
        coerce = _coercer(f.type)
        sample = next((v for v in values if v is not None), None)
        if coerce is not None and sample is not None and not isinstance(
                sample, _PYTHON_TYPES.get(coerce, ())):
            values = [coerce(v) for v in values]  # e.g. SQLite's text timestamps
        try:
            arrays.append(pa.array(values, type=f.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            if coerce is None:
                raise
            arrays.append(pa.array([coerce(v) for v in values], type=f.type))
    return pa.Table.from_arrays(arrays, schema=schema)
