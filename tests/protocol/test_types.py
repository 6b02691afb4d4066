"""Every type DuckDB can give an answer travels as JSON, Arrow and SSE, or is refused naming
the column (issue 15, class 6); an error never costs the client its keep-alive connection.

The JSON forms are those documented in ``zhongshu/protocol/encode.py``; the rows are the RFC
8785 canonical bytes (what the ledger hashes): re-canonicalizing the parsed rows gives them
back byte for byte.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pyarrow as pa
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.conftest import RunningHub
from tests.protocol.test_subscribe import _read_events, live_hub  # noqa: F401 (fixture)
from tests.streams.test_mqtt import _events, _publisher, _send
from zhongshu.ledger import canonical, entry
from zhongshu.protocol import encode

P = "city-operations"
AS_TEXT = "as text"  # the Arrow column is VARCHAR holding DuckDB's text form

# name → (DuckDB expression, JSON value, Arrow: a type predicate or AS_TEXT)
TYPES: dict[str, tuple[str, Any, Callable[[pa.DataType], bool] | str]] = {
    "interval": ("INTERVAL '1 year 2 months 3 days 04:05:06.5'", "P1Y2M3DT4H5M6.5S",
                 pa.types.is_interval),
    "interval_negative": ("INTERVAL '-1 month -90 seconds'", "P-1MT-1M-30S",
                          pa.types.is_interval),
    "interval_zero": ("INTERVAL '0 seconds'", "PT0S", pa.types.is_interval),
    "date": ("CAST('2024-05-01' AS DATE)", "2024-05-01", pa.types.is_date32),
    "date_infinity": ("CAST('infinity' AS DATE)", "infinity", pa.types.is_date32),
    "date_minus_infinity": ("CAST('-infinity' AS DATE)", "-infinity", pa.types.is_date32),
    "date_far_future": ("CAST('294247-01-10' AS DATE)", "+294247-01-10", pa.types.is_date32),
    "date_bc": ("CAST('0044-03-15 (BC)' AS DATE)", "-000043-03-15", pa.types.is_date32),
    "timestamp": ("CAST('2024-05-01 08:30:00.25' AS TIMESTAMP)", "2024-05-01T08:30:00.250000",
                  pa.types.is_timestamp),
    "timestamp_infinity": ("CAST('infinity' AS TIMESTAMP)", "infinity",
                           pa.types.is_timestamp),
    "timestamp_minus_infinity": ("CAST('-infinity' AS TIMESTAMP)", "-infinity",
                                 pa.types.is_timestamp),
    "timestamp_year_0": ("CAST('0001-01-01 (BC) 12:00:00' AS TIMESTAMP)",
                         "0000-01-01T12:00:00", pa.types.is_timestamp),
    "timestamp_far": ("CAST('294246-12-31 23:59:59' AS TIMESTAMP)", "+294246-12-31T23:59:59",
                      pa.types.is_timestamp),
    "timestamp_ns": ("CAST('2024-01-01 12:00:00.123456789' AS TIMESTAMP_NS)",
                     "2024-01-01T12:00:00.123456789", pa.types.is_timestamp),
    "timestamp_s": ("CAST('2024-01-01 12:00:00' AS TIMESTAMP_S)", "2024-01-01T12:00:00",
                    pa.types.is_timestamp),
    "timestamptz_infinity": ("CAST('infinity' AS TIMESTAMPTZ)", "infinity",
                             pa.types.is_timestamp),
    "time": ("CAST('23:59:59.999999' AS TIME)", "23:59:59.999999", pa.types.is_time64),
    "time_ns": ("CAST('12:00:00.123456789' AS TIME_NS)", "12:00:00.123456789",
                pa.types.is_time64),
    "time_tz": ("CAST('12:00:00+05:30' AS TIMETZ)", "12:00:00+05:30", AS_TEXT),
    "hugeint": ("CAST('170141183460469231731687303715884105727' AS HUGEINT)",
                "170141183460469231731687303715884105727", pa.types.is_decimal),
    "uhugeint": ("CAST('340282366920938463463374607431768211455' AS UHUGEINT)",
                 "340282366920938463463374607431768211455", AS_TEXT),
    # beyond 2^53 - 1: a string (RFC 8785 has no such number), its column says so
    "ubigint": ("CAST(18446744073709551615 AS UBIGINT)", "18446744073709551615",
                pa.types.is_uint64),
    "bigint_unsafe": ("CAST(-9007199254740992 AS BIGINT)", "-9007199254740992",
                      pa.types.is_int64),
    "bigint_safe": ("CAST(9007199254740991 AS BIGINT)", 9007199254740991, pa.types.is_int64),
    "list_of_big": ("[1, 9007199254740992]", ["1", "9007199254740992"], pa.types.is_list),
    "decimal_38": ("CAST('12345678901234567890.123456789012345678' AS DECIMAL(38,18))",
                   "12345678901234567890.123456789012345678", pa.types.is_decimal),
    "bignum": ("CAST('123456789012345678901234567890123456789012' AS BIGNUM)",
               "123456789012345678901234567890123456789012", AS_TEXT),
    "uuid": ("CAST('123e4567-e89b-12d3-a456-426614174000' AS UUID)",
             "123e4567-e89b-12d3-a456-426614174000", pa.types.is_string),
    "blob": ("CAST('\\xAA\\xBB' AS BLOB)", "aabb", pa.types.is_binary),
    "bit": ("CAST('10101' AS BIT)", "10101", AS_TEXT),
    "enum": ("CAST('b' AS ENUM('a', 'b'))", "b", pa.types.is_dictionary),
    "json": ("CAST('{\"k\": [1]}' AS JSON)", '{"k": [1]}', pa.types.is_string),
    "geometry": ("CAST('POINT(1 2)' AS GEOMETRY)", "POINT (1 2)", AS_TEXT),
    "variant": ("CAST(42 AS VARIANT)", "42", AS_TEXT),
    "float_infinity": ("CAST('inf' AS DOUBLE)", None, pa.types.is_float64),
    "list": ("[1, 2, NULL]", [1, 2, None], pa.types.is_list),
    "list_of_dates": ("[CAST('infinity' AS DATE), CAST('2024-01-02' AS DATE), NULL]",
                      ["infinity", "2024-01-02", None], pa.types.is_list),
    "nested_list": ("[[1.5, NULL], []]", [["1.5", None], []], pa.types.is_list),
    "array": ("CAST([1, 2] AS INTEGER[2])", [1, 2], pa.types.is_fixed_size_list),
    "struct": ("{'a': 1, 'b': 'x', 'i': INTERVAL 2 HOUR, 'd': CAST('infinity' AS DATE)}",
               {"a": 1, "b": "x", "i": "PT2H", "d": "infinity"}, pa.types.is_struct),
    "map": ("MAP {'k': 1, 'j': 2}", [["k", 1], ["j", 2]], pa.types.is_map),
    "map_of_intervals": ("MAP {1: INTERVAL 1 DAY}", [[1, "P1D"]], pa.types.is_map),
    "union": ("CAST(7 AS UNION(n INTEGER, s VARCHAR))", 7, pa.types.is_union),
}
# nested values holding a type Arrow cannot carry: refused, naming the column
REFUSED = {
    "list_of_time_tz": "[CAST('12:00:00+05:30' AS TIMETZ)]",
    "struct_of_bit": "{'b': CAST('1' AS BIT)}",
    "map_of_uhugeint": "MAP {'k': CAST(1 AS UHUGEINT)}",
}


@pytest.fixture(scope="module")
def http(hub: RunningHub) -> Iterator[httpx.Client]:
    """One keep-alive connection for every request of the module."""
    with httpx.Client(base_url=hub.url, timeout=60, limits=httpx.Limits(max_connections=1),
                      headers={"Authorization": f"Bearer {hub.token('cockpit-city')}"}) as c:
        yield c


def _sql(expr: str, alias: str = "v") -> str:
    return f"SELECT {expr} AS {alias} FROM traffic.segments LIMIT 1"


def _rows_bytes(body: bytes) -> bytes:
    """The exact ``rows`` bytes of a JSON answer (they end the object)."""
    start = body.index(b',"rows":') + len(b',"rows":')
    assert body.endswith(b"}")
    return body[start:-1]


@pytest.mark.parametrize("name", sorted(TYPES))
def test_json(http: httpx.Client, name: str) -> None:
    expr, want, _ = TYPES[name]
    r = http.post("/v1/query", json={"sql": _sql(expr), "purpose": P})
    assert r.status_code == 200, r.text
    rows = _rows_bytes(r.content)
    assert json.loads(rows) == [[want]]
    assert canonical.dumps(json.loads(rows)) == rows  # RFC 8785: the hashed bytes
    column = r.json()["columns"][0]
    as_strings = name in ("ubigint", "bigint_unsafe", "list_of_big")
    assert column.get("encoding") == ("string" if as_strings else None), column
    receipt = r.json()["receipt"]
    logged = json.loads(http.get(f"/v1/ledger/entries/{receipt['index']}").text)
    assert logged["result_sha256"] == entry.result_sha256(rows)


@pytest.mark.parametrize("name", sorted(TYPES))
def test_arrow(http: httpx.Client, name: str) -> None:
    expr, want, arrow = TYPES[name]
    r = http.post("/v1/query", json={"sql": _sql(expr), "purpose": P, "format": "arrow"})
    assert r.status_code == 200, r.text
    table = pa.ipc.open_stream(r.content).read_all()
    t = table.schema.field("v").type
    if arrow == AS_TEXT:
        assert pa.types.is_string(t) and table.column("v").to_pylist() == [want]
    else:
        assert callable(arrow) and arrow(t), t
        # the Arrow value is the JSON one: the same encoder reads it back
        values = encode.json_values(table.column("v"), "v")
        assert json.loads(encode.rows_json([[v] for v in values], table.schema)) == [[want]]


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_naming_the_column(http: httpx.Client, name: str) -> None:
    for fmt in ("json", "arrow"):
        r = http.post("/v1/query", json={"sql": _sql(REFUSED[name], "odd_col"), "purpose": P,
                                         "format": fmt})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["code"] == "type_not_supported" and "`odd_col`" in err["message"]


def test_every_type_in_one_answer(http: httpx.Client) -> None:
    cols = ", ".join(f"{expr} AS {name}" for name, (expr, _, _) in sorted(TYPES.items()))
    r = http.post("/v1/query", json={"sql": f"SELECT {cols} FROM traffic.segments LIMIT 2",
                                     "purpose": P})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [c["name"] for c in body["columns"]] == sorted(TYPES)
    assert body["rows"][0] == [TYPES[n][1] for n in sorted(TYPES)]


# --- the exact forms are orjson's wherever Python holds the value -------------------------


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.datetimes(), st.sampled_from(["s", "ms", "us", "ns"]))
def test_exact_timestamps_match_orjson(value: Any, unit: str) -> None:
    assume(unit != "ns" or 1700 <= value.year <= 2200)  # the range of 64-bit nanoseconds
    arr = pa.array([value], pa.timestamp("us")).cast(pa.timestamp(unit), safe=False)
    python = arr.cast(pa.timestamp("us")).to_pylist()
    assert encode.rows_json([[encode.timestamp_text(arr.view(pa.int64())[0].as_py(), unit)]]
                            ) == encode.rows_json([python])


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.dates(), st.times())
def test_exact_dates_and_times_match_python(day: Any, clock: Any) -> None:
    days = pa.array([day], pa.date32()).view(pa.int32())[0].as_py()
    ns = ((clock.hour * 60 + clock.minute) * 60 + clock.second) * 10**9 \
        + clock.microsecond * 1000
    assert encode.rows_json([[encode.date_text(days)]]) == encode.rows_json([[day]])
    # ISO 8601 as Python writes it (orjson 3.13 drops a digit of 10,000–99,999 µs)
    assert encode.time_text(ns) == clock.isoformat()


def test_times_of_day_keep_their_digits(http: httpx.Client) -> None:
    r = http.post("/v1/query", json={"sql": _sql("CAST('00:00:00.01' AS TIME)"),
                                     "purpose": P})
    assert r.json()["rows"] == [["00:00:00.010000"]]


# --- the connection survives ------------------------------------------------------------


def _raw(sock: socket.socket, path: str, body: dict[str, Any], token: str
         ) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request on an open keep-alive socket; (status, headers, body)."""
    data = json.dumps(body).encode()
    sock.sendall((f"POST {path} HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {token}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
                  ).encode() + data)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, "the hub closed the connection"
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    size = int(headers["content-length"])
    while len(rest) < size:
        chunk = sock.recv(65536)
        assert chunk, "the hub closed the connection mid-body"
        rest += chunk
    assert len(rest) == size
    return int(lines[0].split()[1]), headers, rest


def test_connection_survives_refusals_and_internal_errors(
        own_hub: RunningHub, monkeypatch: pytest.MonkeyPatch) -> None:
    token = own_hub.token("cockpit-city")
    real = encode.answer

    def broken(rows: Any, schema: Any = None) -> tuple[bytes, frozenset[int]]:
        if rows and rows[0] and rows[0][0] == "boom":
            raise RuntimeError("an encoder bug")
        return real(rows, schema)

    monkeypatch.setattr(encode, "answer", broken)
    host, port = own_hub.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        asks = [(_sql("'boom'"), 500), (_sql("1"), 200), (_sql(REFUSED["struct_of_bit"]), 400),
                (_sql(TYPES["interval"][0]), 200), (_sql("'boom'"), 500)] + [
                (_sql(TYPES[n][0]), 200) for n in ("date_infinity", "struct", "time_tz")] * 2
        for sql, status in asks:
            got, headers, body = _raw(sock, "/v1/query", {"sql": sql, "purpose": P}, token)
            assert got == status, body[:300]
            assert headers.get("connection", "").lower() != "close"
            if status == 500:
                assert json.loads(body)["error"]["code"] == "internal"


# --- Server-Sent Events ---------------------------------------------------------------------

SSE_TYPES = ("interval", "date_infinity", "timestamp_ns", "time_tz", "uhugeint", "struct",
             "map_of_intervals", "union", "bit", "list_of_dates")


def test_sse_carries_every_type(live_hub: tuple[RunningHub, str]) -> None:  # noqa: F811
    hub, topic = live_hub
    token = hub.token("traffic-police")
    cols = ", ".join(f"{TYPES[n][0]} AS {n}" for n in SSE_TYPES)
    sql_ok = f"SELECT camera_id, {cols} FROM traffic.live_flow"
    sql_refused = (f"SELECT camera_id, {REFUSED['list_of_time_tz']} AS odd_col "
                   "FROM traffic.live_flow")
    pub = _publisher()
    try:
        _send(pub, topic, _events(20))
        with httpx.Client(base_url=hub.url, timeout=30,
                          headers={"Authorization": f"Bearer {token}"}) as c:
            for sql, want in ((sql_refused, "error"), (sql_ok, "rows"), (sql_refused, "error")):
                events: list[tuple[str, Any]] = []
                stop = threading.Event()
                with c.stream("GET", "/v1/subscribe", params={
                        "sql": sql, "purpose": "traffic-management", "interval_s": 0.5}) as r:
                    assert r.status_code == 200
                    reader = threading.Thread(target=_read_events, args=(r, events, stop),
                                              daemon=True)
                    reader.start()
                    deadline = time.monotonic() + 20
                    while not any(k == want for k, _ in events):
                        assert time.monotonic() < deadline, events
                        time.sleep(0.1)
                    stop.set()
                got = next(d for k, d in events if k == want)
                if want == "error":
                    assert got["code"] == "type_not_supported" and "`odd_col`" in \
                        got["message"]
                else:
                    assert [col["name"] for col in got["columns"]][1:] == list(SSE_TYPES)
                    assert got["rows"][0][1:] == [TYPES[n][1] for n in SSE_TYPES]
                # the stream stayed up after an error event: another one follows
                if want == "error":
                    assert sum(k == "error" for k, _ in events) >= 1
            assert c.get("/v1/catalog").status_code == 200  # the client's pool is fine
    finally:
        pub.disconnect()
        pub.loop_stop()
