"""RFC 8785 canonical JSON: the RFC's number examples; every path (the general writer, the
fast ones, a JSON answer's rows) gives the bytes of the ``rfc8785`` package — an independent
implementation, the oracle — on generated values (integers of any size, unusual floats,
non-BMP strings, keys whose UTF-8 and UTF-16 orders differ), or refuses what it refuses;
entries keep their format version, so those written before RFC 8785 was exact still verify."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from zhongshu.errors import LedgerUnavailable
from zhongshu.ledger import Ledger, canonical, note
from zhongshu.ledger import entry as entries
from zhongshu.ledger.memory import MemoryLedgerStore
from zhongshu.ledger.verify import verify_store
from zhongshu.protocol import encode

# RFC 8785 Appendix B: IEEE 754 bit patterns and their ECMAScript form
NUMBERS = [
    ("0000000000000000", "0"), ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"), ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"), ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"), ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"), ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"), ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"), ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"), ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"), ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"), ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"), ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "text"), NUMBERS)
def test_numbers_as_rfc_8785(bits: str, text: str) -> None:
    (x,) = struct.unpack(">d", bytes.fromhex(bits))
    assert canonical.number(x) == text


_near_edges = st.sampled_from([1e-4, 1e16, 1e21, 1e-6, 1e-7]).flatmap(
    lambda edge: st.floats(edge * 0.999, edge * 1.001))


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.floats(allow_nan=False, allow_infinity=False), _near_edges,
                 _near_edges.map(lambda x: -x), st.integers(-2**60, 2**60).map(float)))
def test_every_double_is_written_as_rfc_8785(x: float) -> None:
    """Doubles of every magnitude (and around the bounds where Python's ``repr`` and
    ECMAScript part ways: 10⁻⁴, 10⁻⁶, 10¹⁶, 10²¹), integral ones too."""
    assert canonical.number(x) == rfc8785.dumps(x).decode()


def test_rfc_8785_example_object() -> None:
    value = {"numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
             "string": "\u20ac$\u000f\nA'\u0042\u0022\u005c\\\"/", "literals": [None, True, False]}
    assert canonical.dumps(value) == (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}').encode()


def test_refuses_what_has_no_canonical_form() -> None:
    for bad in (float("nan"), float("inf"), "\ud800", {1: 2}, {1, 2}, 2**60):
        with pytest.raises(ValueError):
            canonical.dumps(bad)


SAFE = 2**53 - 1
plain = st.recursive(
    st.none() | st.booleans() | st.integers(-SAFE, SAFE) | st.text(),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(st.characters(max_codepoint=127), max_size=8), inner, max_size=4),
    max_leaves=20)


@given(plain)
def test_fast_path_equals_the_general_one(value: object) -> None:
    assert canonical.dumps_plain(value) == canonical.dumps(value)


@given(st.lists(st.lists(st.floats(allow_nan=False, allow_infinity=False) | st.integers(
    -SAFE, SAFE) | st.text() | st.none(), min_size=3, max_size=3), max_size=5))
def test_rows_are_canonical(rows: list[list[object]]) -> None:
    got = canonical.rows(rows, [0, 1, 2])
    assert got == canonical.dumps(rows)
    back = json.loads(got)
    for r, b in zip(rows, back, strict=True):
        for x, y in zip(r, b, strict=True):
            assert (float(x) == float(y)) if isinstance(x, float) else x == y


# --- the rfc8785 package as the oracle ----------------------------------------------------

# keys whose orders differ: UTF-8 (code points) puts U+FF61 before U+1F600, UTF-16 after
# (0xD83D < 0xFF61); and the private-use area just below, and ASCII
KEY_CHARS = st.sampled_from(["a", "b", "é", "\ue000", "\uff61", "\U0001f600", "\U00010000",
                             "中", "\x7f", "\x00"])
keys = st.text(KEY_CHARS, max_size=3) | st.text(max_size=4)
# no lone surrogates: RFC 8785 has no form for them (both sides refuse: checked below)
strings = st.text(st.characters(blacklist_categories=["Cs"]), max_size=8)
# integers of any size (both sides refuse those beyond 2^53 - 1); unusual floats: the
# extremes, subnormals, negative zero, powers of ten near ECMAScript's switch to exponents
ints = st.integers() | st.integers(-2**53 - 2, 2**53 + 2) | st.sampled_from(
    [2**53 - 1, -(2**53 - 1), 2**53, 2**63 - 1, 2**64 - 1, -2**63])
floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [5e-324, -5e-324, 1.7976931348623157e308, -0.0, 1e21, 1e-7, 9.999999999999999e20,
     1e-6, 123456789012345680000.0, 2.0**53, 0.1 + 0.2])
values = st.recursive(
    st.none() | st.booleans() | ints | floats | strings,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=25)


def _oracle(value: object) -> bytes | None:
    """rfc8785's bytes, or None where it refuses the value."""
    try:
        return rfc8785.dumps(value)  # type: ignore[arg-type]
    except rfc8785.CanonicalizationError:
        return None


def _ours(write: object, value: object) -> bytes | None:
    try:
        return write(value)  # type: ignore[operator, no-any-return]
    except ValueError:
        return None


@settings(max_examples=600, deadline=None)
@given(values)
def test_the_general_writer_is_rfc_8785(value: object) -> None:
    assert _ours(canonical.dumps, value) == _oracle(value)


@settings(max_examples=600, deadline=None)
@given(values)
def test_the_fast_path_is_rfc_8785(value: object) -> None:
    """What entries are written with: exact for every value, or refused."""
    assert _ours(canonical.dumps_plain, value) == _oracle(value)


def test_key_order_is_by_utf16_code_units() -> None:
    value = {"\uff61": 1, "\U0001f600": 2, "a": 3}
    want = rfc8785.dumps(value)
    assert want.index("\U0001f600".encode()) < want.index("\uff61".encode())  # not UTF-8's
    assert canonical.dumps_plain(value) == canonical.dumps(value) == want
    assert canonical.rows([[value]], [], nested_columns=[0]) == rfc8785.dumps([[value]])


def test_integers_beyond_the_safe_range_are_refused_everywhere() -> None:
    for big in (2**53, -(2**53), 2**63 - 1, 2**64 - 1):
        with pytest.raises(rfc8785.IntegerDomainError):
            rfc8785.dumps(big)
        for write in (canonical.dumps, canonical.dumps_plain):
            with pytest.raises(ValueError):
                write({"n": big})
        with pytest.raises(ValueError):
            canonical.rows([[big]], [], int_columns=[0])


scalars = st.none() | st.booleans() | st.integers(-SAFE, SAFE) | floats | strings
nested = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(keys, inner, max_size=3), max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(-SAFE, SAFE) | st.none(), floats | st.none(),
                          strings | st.none(), nested), max_size=5))
def test_rows_are_rfc_8785(rows: list[tuple[object, ...]]) -> None:
    table = [list(r) for r in rows]
    got = canonical.rows(table, [1], nested_columns=[3], int_columns=[0])
    assert got == rfc8785.dumps(table)  # type: ignore[arg-type]


int64 = st.integers(-2**63, 2**63 - 1)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(int64, st.lists(int64, max_size=3),
                          st.dictionaries(keys, int64, max_size=2)), min_size=1, max_size=5))
def test_an_answer_with_64_bit_integers_is_rfc_8785(rows: list[tuple[object, ...]]) -> None:
    """A JSON answer's rows: integers beyond the safe range travel as strings, in their
    column only (the column says so), and the bytes are what rfc8785 writes of them."""
    schema = pa.schema([("n", pa.int64()), ("ns", pa.list_(pa.int64())),
                        ("m", pa.struct([("k", pa.int64())]))])  # the keys vary: nested
    table = [list(r) for r in rows]
    payload, strings = encode.answer(table, schema)
    parsed = json.loads(payload)
    assert rfc8785.dumps(parsed) == payload
    for i in range(3):
        big = any(encode._too_big(r[i]) for r in table)
        assert (i in strings) == big
        for sent, value in zip((r[i] for r in parsed), (r[i] for r in table), strict=True):
            assert sent == (encode._as_strings(value) if big else value)


# --- entry format versions ----------------------------------------------------------------


def test_entries_written_before_rfc_8785_was_exact_still_verify(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Version 1 entries were orjson's bytes (keys by UTF-8, large integers exact): they
    verify as written; version 2 entries must be RFC 8785, and one that is not is caught."""
    signer = note.Signer.load_or_create(tmp_path / "k", "test.zhongshu/log", note.ED25519)
    lg = Ledger(MemoryLedgerStore(), "test.zhongshu/log", signer)
    odd = {"\uff61": 1, "\U0001f600": 2, "big": 2**60}  # what v1 wrote, v2 could not
    with monkeypatch.context() as old_hub:  # a hub of before the change
        old_hub.setattr(entries, "VERSION", 1)
        old_hub.setattr(canonical, "dumps_plain",
                        lambda v: orjson.dumps(v, option=orjson.OPT_SORT_KEYS))
        lg.append_now(entries.change("cli:root", "grant.add", {"subject": "g1"}))
        lg.append_now(entries.change("cli:root", "consent.give", odd))
    with pytest.raises(LedgerUnavailable):  # a hub of today refuses the large integer
        lg.append_now(entries.change("cli:root", "consent.give", odd))
    fine = {k: v for k, v in odd.items() if k != "big"}
    lg.append_now(entries.change("cli:root", "consent.give", fine))
    lg.publish()
    old, new = (orjson.loads(lg.entry(i) or b"") for i in (1, 2))
    assert (old["v"], new["v"]) == (1, 2)
    v1 = lg.entry(1) or b""  # not RFC 8785: a large integer, keys in UTF-8 order
    with pytest.raises(rfc8785.IntegerDomainError):
        rfc8785.dumps(old)
    assert v1.index("\uff61".encode()) < v1.index("\U0001f600".encode())
    assert lg.entry(2) == rfc8785.dumps(new)
    assert verify_store(lg.store, signer.verifier).problems == []
    # a v2 entry in v1's (UTF-8) key order is not canonical: caught
    forged = orjson.dumps(new, option=orjson.OPT_SORT_KEYS)
    assert forged != lg.entry(2)
    with pytest.raises(ValueError):
        entries.canonical_bytes({"v": 3})
    assert entries.canonical_bytes(new) != forged
    lg.close()
