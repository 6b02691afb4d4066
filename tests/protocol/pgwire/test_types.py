"""The wire endpoint's encodings against independent oracles: PostgreSQL's own text and
binary output for the same values (the real server), and pygwire's ``DataRow``."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from pygwire import messages as m

from tests.conftest import require_server
from zhongshu.protocol.pgwire import statements
from zhongshu.protocol.pgwire import types as t

#: (JSON-ready value as the HTTP answer holds it, PostgreSQL type, the same value as SQL)
VALUES: list[tuple[Any, int, str]] = [
    (True, t.BOOL, "true"), (False, t.BOOL, "false"),
    (7, t.INT2, "7"), (-70000, t.INT4, "-70000"), (2**62, t.INT8, str(2**62)),
    (1.5, t.FLOAT8, "1.5"), (-0.1, t.FLOAT8, "-0.1"), (1e300, t.FLOAT8, "1e300"),
    ("12.50", t.NUMERIC, "12.50"), ("-0.0001", t.NUMERIC, "-0.0001"),
    ("123456789012345678901234567890.123456789", t.NUMERIC,
     "123456789012345678901234567890.123456789"), ("0", t.NUMERIC, "0"),
    ("10000", t.NUMERIC, "10000"),
    ("a 'quoted' 中文 text", t.TEXT, "'a ''quoted'' 中文 text'"),
    ("2024-05-01", t.DATE, "'2024-05-01'"), ("1999-12-31", t.DATE, "'1999-12-31'"),
    ("infinity", t.DATE, "'infinity'"),
    ("2024-05-01T08:30:00", t.TIMESTAMP, "'2024-05-01 08:30:00'"),
    ("2024-05-01T08:30:00.123456", t.TIMESTAMP, "'2024-05-01 08:30:00.123456'"),
    ("1970-01-01T00:00:00", t.TIMESTAMP, "'1970-01-01 00:00:00'"),
    ("08:30:00", t.TIME, "'08:30:00'"),
    ("aabb00", t.BYTEA, "'\\xaabb00'"),
]


@pytest.fixture(scope="module")
def pg() -> Any:
    require_server("PostgreSQL", 5432)
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test",
                         autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        yield conn


@pytest.mark.parametrize(("value", "oid", "sql"), VALUES,
                         ids=[f"{t.TYPES[o][0]}:{s[:20]}" for _, o, s in VALUES])
def test_text_and_binary_forms_are_postgresqls(pg: Any, value: Any, oid: int, sql: str
                                               ) -> None:
    name = t.TYPES[oid][0]
    query = f"SELECT ({sql})::{name}".encode()
    text = pg.pgconn.exec_params(query, [], result_format=0).get_value(0, 0)
    binary = pg.pgconn.exec_params(query, [], result_format=1).get_value(0, 0)
    assert t.text(value, oid) == text
    assert t.binary(value, oid) == binary


def test_data_rows_are_pygwires_messages() -> None:
    oids = [t.INT8, t.TEXT, t.FLOAT8, t.TIMESTAMP, t.NUMERIC, t.BOOL, t.DATE, t.JSON]
    rows = [[i, None if i % 3 else f"cam-{i}", i / 7, "2024-05-01T08:30:00", str(i) + ".25",
             i % 2 == 0, "2024-05-01", [i, {"a": None}]] for i in range(50)]
    for fmt in (0, 1):
        encoders = [t.encoder(o, fmt) for o in oids]
        want = b"".join(m.DataRow(columns=[
            (t.binary if fmt else t.text)(v, o) for v, o in zip(r, oids, strict=True)
        ]).to_wire() for r in rows)
        assert t.data_rows(rows, encoders) == want


def test_every_arrow_type_has_a_postgresql_type() -> None:
    cases = {pa.int8(): t.INT2, pa.uint16(): t.INT4, pa.uint32(): t.INT8,
             pa.uint64(): t.NUMERIC, pa.int64(): t.INT8, pa.float32(): t.FLOAT4,
             pa.decimal128(10, 2): t.NUMERIC, pa.string(): t.TEXT, pa.binary(): t.BYTEA,
             pa.date32(): t.DATE, pa.time64("us"): t.TIME, pa.timestamp("us"): t.TIMESTAMP,
             pa.timestamp("us", "UTC"): t.TIMESTAMPTZ, pa.list_(pa.int32()): t.JSON,
             pa.struct([("a", pa.int32())]): t.JSON, pa.bool_(): t.BOOL}
    for arrow_type, oid in cases.items():
        assert t.oid_of(arrow_type) == oid, arrow_type


def test_bound_parameters_decode_and_become_literals() -> None:
    assert t.decode_param(b"\x00\x00\x00\x2a", t.INT4, 1) == 42
    assert t.decode_param(b"42", t.INT8, 0) == 42
    assert t.decode_param(t.binary("12.50", t.NUMERIC), t.NUMERIC, 1) == Decimal("12.50")
    assert t.decode_param(t.binary("2024-05-01", t.DATE), t.DATE, 1) == dt.date(2024, 5, 1)
    sql = "SELECT '$1', \"$1\", $1 -- $2\n FROM t WHERE x = $2 /* $1 */"
    assert statements.bind(sql, ["it's", 5]) == (
        "SELECT '$1', \"$1\", 'it''s' -- $2\n FROM t WHERE x = 5 /* $1 */")
    assert statements.placeholders("SELECT $$ $3 $$, $2") == 2
    with pytest.raises(ValueError):
        statements.bind("SELECT $3", [1])


def test_parameter_types_are_inferred_from_the_columns_they_meet() -> None:
    types = statements.infer_param_types(
        "SELECT * FROM t WHERE speed > $1 AND camera_id = $2 LIMIT $3", 3,
        {"speed": t.FLOAT8, "camera_id": t.TEXT})
    assert types == [t.FLOAT8, t.TEXT, t.INT8]
