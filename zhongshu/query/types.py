"""What leaves the engine: every DuckDB type an answer's column may have, and how it travels.

One allow-list decides, from DuckDB's own type of each column of the answer (learned once per
plan, ``Executor.describe``; measured with DuckDB 1.5.5):

* **as is** — Arrow holds the value faithfully and ``protocol.encode`` has a JSON form for
  it (numbers, text, BLOB, dates and times of any range, INTERVAL, UUID, ENUM, and
  LIST/ARRAY/STRUCT/MAP/UNION of these);
* **as text** — DuckDB's Arrow export would change the value: TIME WITH TIME ZONE (the offset
  is dropped), BIT (DuckDB's internal bytes), BIGNUM (an opaque extension), UHUGEINT (a
  128-bit signed decimal: wraps above 2^127), GEOMETRY (WKB under an extension), VARIANT
  (no Arrow export at all). The DuckDB SQL casts such a column to VARCHAR, so JSON and
  Arrow both carry DuckDB's own text form (``12:00:00+05:30``, ``10101``, ``POINT (1 2)``);
* **refused** — anything else: one of the above inside a nested type, or a type this table
  does not know (a newer DuckDB's): ``400 type_not_supported`` naming the column and the
  cast that makes it encodable. A type nobody listed can never reach the encoder.

The native path (a source's own driver) answers only plans whose columns are plain scalars
(``NATIVE_SAFE``): for those, ``query.convert`` turns every driver's values into what DuckDB
gives; anything richer runs on DuckDB, the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from zhongshu.errors import TypeNotSupported

NATIVE_SAFE = frozenset({
    "boolean", "tinyint", "smallint", "integer", "bigint", "hugeint", "utinyint", "usmallint",
    "uinteger", "ubigint", "float", "double", "decimal", "varchar", "date", "timestamp",
    "timestamp with time zone"})
AS_IS = NATIVE_SAFE | {
    "blob", "time", "time_ns", "timestamp_s", "timestamp_ms", "timestamp_ns", "interval",
    "uuid", "enum", "list", "array", "struct", "map", "union", "null"}
AS_TEXT = frozenset({"time with time zone", "bit", "bignum", "varint", "uhugeint", "geometry",
                     "variant"})


@dataclass(frozen=True)
class ColumnType:
    """DuckDB's type of one answer column: its SQL name and the type ids of its tree
    (the column's own first, then every nested type's)."""

    sql: str
    ids: tuple[str, ...]


@dataclass(frozen=True)
class Typed:
    """A plan's DuckDB SQL with the casts its answer needs, and the answer's schema."""

    sql: str
    schema: pa.Schema
    casts: tuple[int, ...]  # positions of the columns cast to VARCHAR


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def decide(name: str, t: ColumnType) -> str:
    """``as_is`` or ``as_text`` for a column.

    >>> decide("x", ColumnType("INTEGER[]", ("list", "integer")))
    'as_is'
    >>> decide("tz", ColumnType("TIME WITH TIME ZONE", ("time with time zone",)))
    'as_text'

    Raises:
        TypeNotSupported: a type the hub cannot encode, named with the column.
    """
    top, nested = t.ids[0], t.ids[1:]
    if top in AS_TEXT:
        return "as_text"
    inner = next((i for i in nested if i in AS_TEXT), None)
    if inner is not None:
        raise TypeNotSupported(
            f"column `{name}` has type {t.sql}: the hub cannot encode {inner.upper()} inside "
            f"a nested value; cast the column to VARCHAR (e.g. `CAST(… AS VARCHAR)`)")
    unknown = next((i for i in t.ids if i not in AS_IS), None)
    if unknown is not None:
        raise TypeNotSupported(
            f"column `{name}` has type {t.sql}, which the hub cannot encode; cast it to a "
            "supported type (e.g. `CAST(… AS VARCHAR)`)")
    return "as_is"


def typed_sql(sql: str, schema: pa.Schema, types: list[ColumnType]) -> Typed:
    """``sql`` with each column Arrow cannot carry faithfully cast to VARCHAR (by position:
    an answer may repeat a name), and the answer's schema after the casts.

    Raises:
        TypeNotSupported: a column the hub cannot encode (see :func:`decide`).
    """
    names = schema.names
    casts = tuple(i for i, (n, t) in enumerate(zip(names, types, strict=True))
                  if decide(n, t) == "as_text")
    if not casts:
        return Typed(sql, schema, ())
    exprs = [f"CAST(#{i + 1} AS VARCHAR) AS {_quote(n)}" if i in casts
             else f"#{i + 1} AS {_quote(n)}" for i, n in enumerate(names)]
    fields = [schema.field(i).with_type(pa.string()) if i in casts else schema.field(i)
              for i in range(len(names))]
    return Typed(f"SELECT {', '.join(exprs)} FROM ({sql}) AS _typed", pa.schema(fields),
                 casts)


def native_safe(types: list[ColumnType]) -> bool:
    """Whether a source's own driver may answer: every column a plain scalar."""
    return all(t.ids[0] in NATIVE_SAFE for t in types)
