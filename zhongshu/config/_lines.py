"""Where in a TOML text a value is written, so that an error can name the line to change."""

from __future__ import annotations

import re
from typing import Any


def line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """Best-effort line number of a pydantic error location inside a TOML text.

    >>> line_of('[member]\\nname = "m"\\n\\n[[sources]]\\nname = "a"\\n\\n[[sources]]\\n'
    ...         'name = "b"\\nkind = "x"\\n', ("sources", 1, "kind"))
    9
    >>> line_of('[[callers]]\\nservices = ["a"]\\nkinds = ["x"]\\n', ("callers", 0, "kinds", 0))
    3
    >>> line_of('[city]\\nalgorithms = 1\\n[people]\\nalgorithms = ["x"]\\n',
    ...         ("people", "algorithms", 0))
    4
    """
    lines = text.splitlines()
    start, table = 0, ""
    i = 0
    while i < len(loc):
        key = loc[i]
        if isinstance(key, str) and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            table = f"{table}.{key}" if table else key
            header = re.compile(r"^\s*\[\[\s*" + re.escape(table) + r"\s*\]\]")
            seen = -1
            for n in range(start, len(lines)):
                if header.match(lines[n]):
                    seen += 1
                    if seen == loc[i + 1]:
                        start = n
                        break
            else:  # not a table: an item of an array value (``kinds = ["x"]``)
                pat = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
                for n in range(start, len(lines)):
                    if pat.match(lines[n]):
                        return n + 1
                return None
            i += 2
            continue
        if isinstance(key, str) and i + 1 < len(loc):  # a plain table: ``[people]``
            name = f"{table}.{key}" if table else key
            header = re.compile(r"^\s*\[\s*" + re.escape(name) + r"\s*\]\s*(#.*)?$")
            found = next((n for n in range(start, len(lines)) if header.match(lines[n])), None)
            if found is not None:
                table, start = name, found
                i += 1
                continue
        if isinstance(key, str):
            pat = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
            for n in range(start, len(lines)):
                if pat.match(lines[n]):
                    return n + 1
            # a sub-table of its own (``[datasets.entity]``)
            sub = re.compile(r"^\s*\[\s*" + re.escape(f"{table}.{key}" if table else key) +
                             r"\s*\]\s*(#.*)?$")
            found = next((n for n in range(start, len(lines)) if sub.match(lines[n])), None)
            if found is not None:
                return found + 1
            if re.match(r"^\s*\[", lines[start] if start < len(lines) else ""):
                return start + 1
            return None
        i += 1
    return start + 1 if start else None


def find(text: str, needle: str) -> int | None:
    """The first line (1-based) of ``text`` holding ``needle``, or None."""
    for n, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return n
    return None
