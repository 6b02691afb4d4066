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
    """DuckDB's type of one answer column: the column's name, the type's SQL name and the
    type ids of its tree (the column's own first, then every nested type's)."""

    name: str
    sql: str
    ids: tuple[str, ...]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def decide(name: str, t: ColumnType) -> str:
    """``as_is`` or ``as_text`` for a column.

    >>> decide("x", ColumnType("x", "INTEGER[]", ("list", "integer")))
    'as_is'
    >>> decide("tz", ColumnType("tz", "TIME WITH TIME ZONE", ("time with time zone",)))
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


def typed_sql(sql: str, types: list[ColumnType]) -> tuple[str, tuple[int, ...]]:
    """``sql`` with each column Arrow cannot carry faithfully cast to VARCHAR (by position:
    an answer may repeat a name), and the positions cast.

    >>> typed_sql("SELECT x, tz FROM t", [ColumnType("x", "INTEGER", ("integer",)),
    ...           ColumnType("tz", "TIME WITH TIME ZONE", ("time with time zone",))])
    ('SELECT #1 AS "x", CAST(#2 AS VARCHAR) AS "tz" FROM (SELECT x, tz FROM t) AS _typed', (1,))

    Raises:
        TypeNotSupported: a column the hub cannot encode (see :func:`decide`).
    """
    casts = tuple(i for i, t in enumerate(types) if decide(t.name, t) == "as_text")
    if not casts:
        return sql, ()
    exprs = [f"CAST(#{i + 1} AS VARCHAR) AS {_quote(t.name)}" if i in casts
             else f"#{i + 1} AS {_quote(t.name)}" for i, t in enumerate(types)]
    return f"SELECT {', '.join(exprs)} FROM ({sql}) AS _typed", casts


def native_safe(types: list[ColumnType]) -> bool:
    """Whether a source's own driver may answer: every column a plain scalar (JSON, a
    VARCHAR to DuckDB, is not plain: engines cast text to it differently)."""
    return all(t.ids[0] in NATIVE_SAFE and t.sql != "JSON" for t in types)
