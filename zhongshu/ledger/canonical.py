"""RFC 8785 JSON Canonicalization Scheme (JCS): one byte string per JSON value.

Anyone can recompute an entry's hash from its parsed JSON: keys sorted by UTF-16 code units,
no whitespace, strings escaped as ECMAScript's ``JSON.stringify`` does, numbers in
ECMAScript's shortest round-trip form (``1``, not ``1.0``; ``1e+21``; ``1e-7``).
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import orjson

_MAX_SAFE = 2**53


def number(x: float | int) -> str:
    """The ECMAScript ``Number.prototype.toString`` form of ``x`` (RFC 8785 §3.2.2.3).

    >>> number(1.0), number(1e21), number(1e-7), number(0.1), number(-123.456)
    ('1', '1e+21', '1e-7', '0.1', '-123.456')

    Raises:
        ValueError: ``x`` is NaN or infinite, or an integer beyond IEEE 754 precision.
    """
    if isinstance(x, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(x, int):
        if abs(x) > _MAX_SAFE:
            raise ValueError(f"integer {x} exceeds IEEE 754 double precision")
        return str(x)
    if not math.isfinite(x):
        raise ValueError("NaN and infinities have no JSON form")
    if x == 0:
        return "0"
    if x < 0:
        return "-" + number(-x)
    _, digits, exp = Decimal(repr(x)).as_tuple()
    if not isinstance(exp, int):  # "n"/"N"/"F": NaN or infinite, refused above
        raise ValueError("NaN and infinities have no JSON form")
    ds = "".join(map(str, digits)).rstrip("0")
    exp += len(digits) - len(ds)  # value = int(ds) * 10**exp
    k = len(ds)
    n = exp + k  # value = 0.ds * 10**n
    if k <= n <= 21:
        return ds + "0" * (n - k)
    if 0 < n <= 21:
        return ds[:n] + "." + ds[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + ds
    e = n - 1
    mant = ds if k == 1 else ds[0] + "." + ds[1:]
    return f"{mant}e{'+' if e > 0 else '-'}{abs(e)}"


def _string(s: str) -> str:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a string holds a lone surrogate; RFC 8785 refuses it") from None
    return json.dumps(s, ensure_ascii=False)


def _write(v: Any, out: list[str]) -> None:
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, str):
        out.append(_string(v))
    elif isinstance(v, (int, float)):
        out.append(number(v))
    elif isinstance(v, dict):
        if not all(isinstance(k, str) for k in v):
            raise ValueError("object keys must be strings")
        out.append("{")
        for i, k in enumerate(sorted(v, key=lambda k: k.encode("utf-16-be", "surrogatepass"))):
            if i:
                out.append(",")
            out.append(_string(k))
            out.append(":")
            _write(v[k], out)
        out.append("}")
    elif isinstance(v, (list, tuple)):
        out.append("[")
        for i, item in enumerate(v):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise ValueError(f"{type(v).__name__} has no JSON form")


def dumps(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of a JSON value (dict, list, str, number, bool, None).

    >>> dumps({"b": [1, 2.50, None, True], "a": "x"})
    b'{"a":"x","b":[1,2.5,null,true]}'

    Raises:
        ValueError: the value has no canonical JSON form (NaN, a lone surrogate, a set…).
    """
    out: list[str] = []
    _write(value, out)
    return "".join(out).encode("utf-8")


def _jcs_float(v: Any) -> Any:
    if isinstance(v, float):
        return orjson.Fragment(number(v).encode()) if math.isfinite(v) else None
    if isinstance(v, list):
        return [_jcs_float(x) for x in v]
    if isinstance(v, dict):
        return {k: _jcs_float(x) for k, x in v.items()}
    return v


def rows(values: list[list[Any]], float_columns: list[int], default: Any = None) -> bytes:
    """A result's rows as RFC 8785 canonical JSON, fast: orjson writes everything but the
    floats, which are written in ECMAScript form. ``float_columns`` are the positions of
    columns that may hold floats (directly or nested); NaN and infinities become ``null``.

    >>> rows([[1, 2.0, {"k": 1e21}], [2, float("nan"), None]], [1, 2])
    b'[[1,2,{"k":1e+21}],[2,null,null]]'
    """
    if float_columns:
        values = [list(r) for r in values]
        for r in values:
            for i in float_columns:
                r[i] = _jcs_float(r[i])
    return orjson.dumps(values, default=default, option=orjson.OPT_SORT_KEYS)


def dumps_plain(value: Any) -> bytes:
    """:func:`dumps` for values without floats whose object keys are ASCII — entries, by
    construction — at orjson's speed (100× the general path). For such values orjson's
    sorted, compact output is exactly RFC 8785 (``tests/ledger`` checks it property-wise).

    >>> dumps_plain({"z": 1, "a": [None, "x"]}) == dumps({"z": 1, "a": [None, "x"]})
    True
    """
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
