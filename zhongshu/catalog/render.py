"""The text ``zhongshu connect`` adds to a member file: a ``[[sources]]`` entry and one
``[[datasets]]`` per proposed table, each column on one line with the evidence for its
classification as a comment beside it. Appended, so what the owner wrote stays as written."""

from __future__ import annotations

from datetime import date

from zhongshu.catalog.propose import ColumnProposal, TableProposal
from zhongshu.config import SourceConfig
from zhongshu.config._toml import toml_string

_SOURCE_KEYS = ("name", "kind", "path", "host", "port", "database", "schema", "user",
                "password_secret")


def member_header(name: str, kind: str, title: str) -> str:
    """The ``[member]`` table of a new member file."""
    return (f"# Member `{name}`, started by `zhongshu connect`. Reference: "
            "docs/configuration.md\n\n"
            f"[member]\nname = {toml_string(name)}\nkind = {toml_string(kind)}\n"
            f"title = {toml_string(title)}\n")


def source_block(config: SourceConfig) -> str:
    """A ``[[sources]]`` entry (never a password: ``password_secret`` names it)."""
    data = config.model_dump(by_alias=True, exclude_defaults=True)
    data.update(name=config.name, kind=config.kind)
    if not config.path:
        data["host"] = config.host
    lines = ["[[sources]]"]
    for key in _SOURCE_KEYS:
        if key in data and data[key] is not None:
            v = data[key]
            lines.append(f"{key} = {v if isinstance(v, int) else toml_string(str(v))}")
    return "\n".join(lines) + "\n"


def dataset_block(p: TableProposal, source: str) -> str:
    """A proposed ``[[datasets]]`` entry: unlisted, its columns one per line."""
    flagged = sum(1 for c in p.columns if c.flagged)
    lines = [f"# {p.table}: {len(p.columns)} columns, {p.sampled} rows sampled, "
             f"{flagged} proposed personal or sensitive",
             "[[datasets]]",
             f"name = {toml_string(p.dataset)}",
             f"title = {toml_string(p.table)}",
             'description = "TODO: what one row is, and how often it changes"',
             f"source = {toml_string(source)}",
             f"table = {toml_string(p.table)}"]
    if p.area_column:
        lines.append(f"area_column = {toml_string(p.area_column)}  # {p.area_evidence}")
    lines.append("listed = false  # true once you have checked every column below")
    lines.append("columns = [")
    lines += [f"  {_column(c)}," + (f"  # {_comment(c)}" if _comment(c) else "")
              for c in p.columns]
    lines.append("]")
    return "\n".join(lines) + "\n"


def _column(c: ColumnProposal) -> str:
    parts = [f"name = {toml_string(c.name)}", f"type = {toml_string(c.type)}",
             f"classification = {toml_string(c.classification)}"]
    if c.identifies:
        parts.append(f"identifies = {toml_string(c.identifies)}")
    if c.expr:
        parts += [f"expr = {toml_string(c.expr)}",
                  f"description = {toml_string('source column ' + c.source_column)}"]
    return "{ " + ", ".join(parts) + " }"


def _comment(c: ColumnProposal) -> str:
    text = c.evidence
    if c.flagged and c.mask:
        text += f"; in a grant, mask it: {c.mask}"
    return text.replace("\n", " ")


def proposal_text(source: SourceConfig | None, source_name: str, shown: str,
                  proposals: list[TableProposal]) -> str:
    """What is appended to the member file: a banner saying what to do, the source (None:
    the file declares it already), then the datasets."""
    parts = [f"\n# --- proposed by `zhongshu connect` on {date.today().isoformat()} from "
             f"{shown} ---\n"
             "# Nothing here is listed or granted: check each column's classification (the\n"
             "# evidence is beside it), write the descriptions, then set `listed = true` and\n"
             "# add [[grants]]. `zhongshu catalog check` validates the file.\n"]
    if source is not None:
        parts.append(source_block(source))
    parts += [dataset_block(p, source_name) for p in proposals]
    return "\n".join(parts)

