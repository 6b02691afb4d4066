"""RFC 8785 JSON Canonicalization Scheme (JCS): one byte string per JSON value.

Anyone can recompute an entry's hash from its parsed JSON: keys sorted by UTF-16 code units,
no whitespace, strings escaped as ECMAScript's ``JSON.stringify`` does, numbers in
ECMAScript's shortest round-trip form (``1``, not ``1.0``; ``1e+21``; ``1e-7``). Integers
are numbers only within ±(2⁵³ − 1), as RFC 8785 (I-JSON) allows: a larger one is refused
(``ValueError``), never written exactly — the caller sends it as a string (the protocol's
``"encoding": "string"`` columns).

The fast paths (orjson) are taken only where orjson's output is exactly RFC 8785: no float
(written in ECMAScript form instead), no integer beyond the safe range, and object keys in
ASCII (orjson sorts keys by UTF-8 bytes, RFC 8785 by UTF-16 code units: the two differ for
keys holding characters above U+FFFF and between U+E000 and U+FFFF). Anything else goes
through the general writer. ``tests/ledger/test_canonical.py`` checks both against the
``rfc8785`` package on generated values.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import orjson

MAX_SAFE = 2**53 - 1  # RFC 8785 §3.2.2.3 / I-JSON: integers exact in an IEEE 754 double


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
        if abs(x) > MAX_SAFE:
            raise ValueError(f"integer {x} exceeds IEEE 754 double precision")
        return str(x)
    if 1e-4 <= abs(x) < 1e16:  # Python's repr is ECMAScript's form here, but for "55.0"
        r = repr(x)
        return r[:-2] if r.endswith(".0") else r
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


def _write(v: Any, out: list[str], default: Any = None) -> None:
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
    elif isinstance(v, orjson.Fragment):
        out.append(v.contents.decode() if isinstance(v.contents, bytes) else v.contents)
    elif isinstance(v, dict):
        if not all(isinstance(k, str) for k in v):
            raise ValueError("object keys must be strings")
        out.append("{")
        for i, k in enumerate(sorted(v, key=lambda k: k.encode("utf-16-be", "surrogatepass"))):
            if i:
                out.append(",")
            out.append(_string(k))
            out.append(":")
            _write(v[k], out, default)
        out.append("}")
    elif isinstance(v, (list, tuple)):
        out.append("[")
        for i, item in enumerate(v):
            if i:
                out.append(",")
            _write(item, out, default)
        out.append("]")
    elif default is not None:
        _write(default(v), out)
    else:
        raise ValueError(f"{type(v).__name__} has no JSON form")


def dumps(value: Any, default: Any = None) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of a JSON value (dict, list, str, number, bool, None).

    >>> dumps({"b": [1, 2.50, None, True], "a": "x"})
    b'{"a":"x","b":[1,2.5,null,true]}'

    ``default`` turns any other value into one that has a JSON form (as orjson's does).

    Raises:
        ValueError: the value has no canonical JSON form (NaN, a lone surrogate, an integer
            beyond ±(2⁵³ − 1), a set…).
    """
    out: list[str] = []
    _write(value, out, default)
    return "".join(out).encode("utf-8")


def _jcs_float(v: Any) -> Any:
    if isinstance(v, float):
        return orjson.Fragment(number(v).encode()) if math.isfinite(v) else None
    if isinstance(v, list):
        return [_jcs_float(x) for x in v]
    if isinstance(v, dict):
        return {k: _jcs_float(x) for k, x in v.items()}
    return v


def _finite(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, list):
        return [_finite(x) for x in v]
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    return v


def rows(values: list[list[Any]], float_columns: list[int], default: Any = None,
         nested_columns: list[int] | tuple[int, ...] = (),
         int_columns: list[int] | tuple[int, ...] = ()) -> bytes:
    """A result's rows as RFC 8785 canonical JSON, fast: orjson writes the scalars, floats in
    ECMAScript form; NaN and infinities become ``null``. ``float_columns`` are the positions
    of scalar columns that may hold floats, ``nested_columns`` those of nested values (lists,
    objects: written by the general writer, keys in UTF-16 order), ``int_columns`` those of
    integers that may be beyond ±(2⁵³ − 1) (64-bit ones).

    >>> rows([[1, 2.0, {"k": 1e21}], [2, float("nan"), None]], [1], nested_columns=[2])
    b'[[1,2,{"k":1e+21}],[2,null,null]]'

    Raises:
        ValueError: an integer beyond ±(2⁵³ − 1) (send it as a string), or a value with no
            canonical form.
    """
    for r in values:
        for i in int_columns:
            v = r[i]
            if v is not None and not -MAX_SAFE <= v <= MAX_SAFE:
                raise ValueError(f"integer {v} is beyond ±(2^53 - 1): send it as a string")
    nested = set(nested_columns)
    scalar_floats = [i for i in float_columns if i not in nested]
    if scalar_floats or nested:
        values = [list(r) for r in values]
        for r in values:
            for i in scalar_floats:
                r[i] = _jcs_float(r[i])
            for i in nested:
                if r[i] is not None:
                    r[i] = orjson.Fragment(dumps(_finite(r[i]), default))
    return orjson.dumps(values, default=default, option=orjson.OPT_SORT_KEYS)


def _plain(v: Any) -> bool:
    """Whether orjson's sorted, compact output of ``v`` is exactly RFC 8785."""
    if isinstance(v, str) or v is None or isinstance(v, bool):
        return True
    if isinstance(v, int):
        return -MAX_SAFE <= v <= MAX_SAFE
    if isinstance(v, dict):
        return all(isinstance(k, str) and k.isascii() and _plain(x) for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return all(_plain(x) for x in v)
    return False  # floats, and anything orjson would write in a form of its own


def dumps_plain(value: Any) -> bytes:
    """:func:`dumps`, at orjson's speed (100× the general path) for the values it writes
    exactly — no floats, integers within ±(2⁵³ − 1), ASCII keys: entries, by construction —
    and through the general writer for any other (which refuses what RFC 8785 has no form
    for, such as an integer beyond the safe range).

    >>> dumps_plain({"z": 1, "a": [None, "x"]}) == dumps({"z": 1, "a": [None, "x"]})
    True
    >>> dumps_plain({"\U0001f600": 1, "\uff61": 2})  # UTF-16 order, not UTF-8's
    b'{"\xf0\x9f\x98\x80":1,"\xef\xbd\xa1":2}'
    """
    if not _plain(value):
        return dumps(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
