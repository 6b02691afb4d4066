"""Rows from a source's own driver → an Arrow table with the types DuckDB gives the query.

Drivers disagree on types (SQLite keeps times as text and booleans as integers, PostgreSQL
returns ``Decimal`` for sums); converting to one schema makes both paths' answers identical.
A float where the schema says DECIMAL (SQLite has no decimals: a column declared
``DECIMAL(10,2)`` there holds doubles, cast by the dataset's view) is rounded exactly as
DuckDB casts a DOUBLE to that DECIMAL.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from functools import partial
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


def _to_decimal(v: Any, scale: int = 0) -> Any:
    """``v`` as a DECIMAL of ``scale`` digits after the point; a float as DuckDB's
    ``CAST(DOUBLE AS DECIMAL)`` gives it (scaled in double arithmetic, rounded half away
    from zero).

    >>> _to_decimal(2.675, 2), _to_decimal(1.005, 2), _to_decimal(-0.125, 2), _to_decimal(7, 2)
    (Decimal('2.68'), Decimal('1.00'), Decimal('-0.13'), Decimal('7'))
    """
    if v is None or isinstance(v, Decimal):
        return v
    if isinstance(v, float):
        x = v * 10**scale
        n = math.floor(abs(x) + 0.5)
        return Decimal(-n if x < 0 else n).scaleb(-scale)
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


def coerce_rows(rows: Sequence[Sequence[Any]], schema: pa.Schema) -> list[list[Any]]:
    """Driver rows with each value as Arrow's ``to_pylist`` would give it for ``schema``
    (text timestamps parsed, 0/1 booleans as bools, decimals for DECIMAL columns…)."""
    out = [list(r) for r in rows]
    if not out:
        return out
    for i, f in enumerate(schema):
        if pa.types.is_decimal(f.type):  # always: a float's digits must be DuckDB's
            dec = partial(_to_decimal, scale=f.type.scale)
            for r in out:
                r[i] = dec(r[i])
            continue
        coerce = _coercer(f.type)
        if coerce is None:
            continue
        sample = next((r[i] for r in out if r[i] is not None), None)
        if sample is not None and not _is_canonical(sample, coerce):
            for r in out:
                r[i] = coerce(r[i])
    return out


def _is_canonical(value: Any, coerce: Callable[[Any], Any]) -> bool:
    want = _PYTHON_TYPES[coerce]
    if coerce is _to_int or coerce is _to_float:
        return type(value) is want  # bool is an int, Decimal is not a float
    return isinstance(value, want)


def coerced_to_arrow(rows: Sequence[Sequence[Any]], schema: pa.Schema) -> pa.Table:
    """Build a table of ``schema`` from driver rows (positional, same column order) already
    coerced (:func:`coerce_rows`)."""
    width = len(schema)
    if any(len(r) != width for r in rows):
        raise ValueError(f"a row does not have the schema's {width} columns")
    columns = [[r[i] for r in rows] for i in range(width)]  # twice zip(*rows)'s speed
    arrays = [pa.array(values, type=f.type) for values, f in zip(columns, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)
