"""Types and literals as DuckDB spells them: what a declared column may be served from."""

from __future__ import annotations

from typing import Any


def sql_literal(value: Any) -> str:
    """``value`` as a single-quoted SQL string literal.

    >>> sql_literal("it's")
    "'it''s'"
    """
    return "'" + str(value).replace("'", "''") + "'"


_TYPE_FAMILIES = {
    "int": ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
            "UINTEGER", "UBIGINT", "INT", "INT1", "INT2", "INT4", "INT8"),
    "float": ("FLOAT", "DOUBLE", "REAL", "DECIMAL"),
    "text": ("VARCHAR", "TEXT", "STRING", "CHAR", "BPCHAR", "UUID", "JSON"),
    "time": ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "DATETIME",
             "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"),
    "date": ("DATE",),
    "bool": ("BOOLEAN", "BOOL"),
    "blob": ("BLOB", "BYTEA"),
}


def type_family(type_name: str) -> str:
    """Coarse family of a DuckDB type name (int, float, text, time, date, bool, …).

    >>> type_family("DECIMAL(10,2)"), type_family("INTEGER[]"), type_family("varchar")
    ('float', 'nested', 'text')
    """
    t = type_name.upper().split("(")[0].strip()
    for fam, names in _TYPE_FAMILIES.items():
        if t in names:
            return fam
    if t.endswith("[]") or t.startswith(("LIST", "STRUCT", "MAP")):
        return "nested"
    return t.lower()


def compatible(declared: str, actual: str) -> bool:
    """Whether a source column of type ``actual`` can serve a declared column type.

    Integers may serve a float or decimal column; everything else must stay in its family.

    >>> compatible("DOUBLE", "BIGINT"), compatible("BIGINT", "DOUBLE")
    (True, False)
    """
    d, a = type_family(declared), type_family(actual)
    return d == a or (d == "float" and a == "int")
