"""An owner confirms a proposed dataset (``zhongshu catalog confirm``): its ``listed = false``
line becomes ``listed = true`` in the member file, every other line — the evidence comments
``zhongshu connect`` wrote, the owner's own edits — kept as it is."""

from __future__ import annotations

import re

from zhongshu.errors import ConfigError

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_NAME = re.compile(r"""^\s*name\s*=\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)')\s*(#.*)?$""")
_LISTED = re.compile(r"^(\s*listed\s*=\s*)(true|false)\b(.*)$")


def _entries(lines: list[str]) -> list[tuple[int, int, int]]:
    """(first line, first line of its sub-tables, end line) of each ``[[datasets]]`` entry."""
    heads = [(i, m.group(1), m.group(2)) for i, line in enumerate(lines)
             if (m := _HEADER.match(line))]
    out = []
    for k, (i, brackets, name) in enumerate(heads):
        if brackets != "[[" or name != "datasets":
            continue
        later = heads[k + 1:]
        own = next((j for j, _b, _n in later), len(lines))
        end = next((j for j, _b, n in later if not n.startswith("datasets.")), len(lines))
        out.append((i, min(own, end), end))
    return out


def confirm(text: str, dataset: str, path: str) -> tuple[str, bool]:
    """The member file ``text`` with ``dataset`` listed, and whether that changed anything
    (False: it was listed already).

    >>> confirm('[[datasets]]\\nname = "parks.trees"\\nlisted = false  # check\\n',
    ...         "parks.trees", "parks.toml")
    ('[[datasets]]\\nname = "parks.trees"\\nlisted = true  # check\\n', True)

    Raises:
        ConfigError: the file declares no such dataset (named with the file).
    """
    lines = text.splitlines(keepends=True)
    for start, own, _end in _entries(lines):
        keys = range(start + 1, own)  # the entry's own keys, before its sub-tables
        names = [m.group(1) if m.group(1) is not None else m.group(2)
                 for i in keys if (m := _NAME.match(lines[i].rstrip("\n")))]
        if dataset not in names:
            continue
        for i in keys:
            m = _LISTED.match(lines[i].rstrip("\n"))
            if m:
                if m.group(2) == "true":
                    return text, False
                newline = "\n" if lines[i].endswith("\n") else ""
                lines[i] = f"{m.group(1)}true{m.group(3)}{newline}"
                return "".join(lines), True
        return text, False  # no `listed` line: listed by default
    raise ConfigError(f"declares no dataset `{dataset}`", path=path)
