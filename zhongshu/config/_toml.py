"""TOML written by hand (where ``tomli_w`` cannot keep a file's comments), and files
replaced in one step (a reader never sees half of one)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path


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


def replace_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` in one step: a hidden file beside it (which a city's
    loader skips), then renamed over it, so a reader sees the old file or the new one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
