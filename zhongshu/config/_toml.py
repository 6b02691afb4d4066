"""TOML values written by hand (where ``tomli_w`` cannot keep a file's comments)."""

from __future__ import annotations

import re


def toml_key(name: str) -> str:
    """``name`` as a TOML key: bare when it may be, quoted otherwise.

    >>> toml_key("traffic-pw"), toml_key("姓名")
    ('traffic-pw', '"姓名"')
    """
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else toml_string(name)


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string (quotes, backslashes and control characters
    escaped).

    >>> print(toml_string('a"b\\\\c'))
    "a\\"b\\\\c"
    """
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
