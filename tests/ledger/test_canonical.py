"""RFC 8785 canonical JSON: the RFC's number examples, and the fast paths agree with the
general one."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zhongshu.ledger import canonical

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


plain = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(st.characters(max_codepoint=127), max_size=8), inner, max_size=4),
    max_leaves=20)


@given(plain)
def test_fast_path_equals_the_general_one(value: object) -> None:
    assert canonical.dumps_plain(value) == canonical.dumps(value)


@given(st.lists(st.lists(st.floats(allow_nan=False, allow_infinity=False) | st.integers(
    -2**53, 2**53) | st.text() | st.none(), min_size=3, max_size=3), max_size=5))
def test_rows_are_canonical(rows: list[list[object]]) -> None:
    got = canonical.rows(rows, [0, 1, 2])
    assert got == canonical.dumps(rows)
    back = json.loads(got)
    for r, b in zip(rows, back, strict=True):
        for x, y in zip(r, b, strict=True):
            assert (float(x) == float(y)) if isinstance(x, float) else x == y
