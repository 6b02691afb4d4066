"""Declared cockpit panels: the defaults shipped here, a city's own ``cockpit.toml``, and
scenarios' panels (the ``zhongshu.cockpit_panels`` entry point group: a callable returning
a list of panel dicts); bound to one page's level and area.

A panel's SQL is configuration, checked when the panels are loaded: bound to each page level
it is shown on (and its ``trigger``), it must parse as one statement; and, given a ``check``
(the firewall, as a viewer who may read exactly the panel's declared ``datasets``: see
``zhongshu.policy.owners.panel_checker``, which this part may not import), pass it — an error
names the file and the line of the panel's ``sql``. A page runs it as its viewer.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import sqlglot
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from zhongshu.config._lines import line_of
from zhongshu.errors import ConfigError, ZhongshuError

Level = Literal["city", "district", "street"]
LEVELS: tuple[Level, ...] = ("city", "district", "street")
DEFAULTS = Path(__file__).with_name("panels.toml")
ENTRY_POINTS = "zhongshu.cockpit_panels"
Check = Callable[[str, Sequence[str]], None]
"""A check of one panel's bound SQL and the datasets it declares; raises ``ZhongshuError``."""


class Panel(BaseModel):
    """One panel: a title, governed SQL with the page's area as a parameter, a chart kind
    and how it refreshes."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    group: str = "other"
    title: str
    title_zh: str = ""
    kind: Literal["number", "bar", "line", "table", "map", "segments", "hub"]
    sql: str | None = None
    datasets: list[str] = Field(default=[], description="datasets it reads (a viewer without "
                                "access to one of them does not see the panel)")
    area: dict[Literal["district", "street"], str] = {}
    child: dict[Literal["city", "district"], str] = {}
    levels: list[Level] | None = None
    live: bool = Field(default=False, description="windowed data: pushed by /v1/subscribe")
    trigger: str | None = Field(default=None, description="a query over the panel's windowed "
                                "datasets only, subscribed to; the panel is re-read when it "
                                "changes (default: the panel's own query)")
    refresh_s: float = Field(default=0, ge=0, description="0: loaded once")

    @model_validator(mode="after")
    def _check(self) -> Panel:
        if (self.sql is None) != (self.kind == "hub"):
            raise ValueError(f"panel `{self.id}`: every kind but `hub` needs `sql`")
        for level in self.shown_on():
            if level != "city" and level not in self.area and self.sql:
                raise ValueError(f"panel `{self.id}` is shown on {level} pages but has no "
                                 f"`area.{level}`")
            if "{child}" in (self.sql or "") and level not in self.child:
                raise ValueError(f"panel `{self.id}` uses {{child}} but has no "
                                 f"`child.{level}`")
        return self

    def shown_on(self) -> list[Level]:
        """The page levels this panel appears on."""
        if self.levels is not None:
            return list(self.levels)
        return ["city", *(lv for lv in LEVELS[1:] if lv in self.area)]

    def bound(self, level: Level, area: str | None) -> dict[str, Any]:
        """The panel for one page: its SQL with the area filled in (``area`` is a known
        area name, checked by the caller)."""
        out = self.model_dump(exclude={"area", "child", "levels", "sql"})
        if self.sql is not None:
            where = "TRUE" if level == "city" or area is None else \
                f"{self.area[level]} = '{area}'"
            # street pages have no areas one level down
            child = self.child[level] if level in self.child else "NULL"
            out["sql"] = self.sql.replace("{where}", where).replace("{child}", child)
        return out


def _read(path: Path) -> tuple[dict[str, Any], str]:
    try:
        text = path.read_text(encoding="utf-8")
        return tomllib.loads(text), text
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read the cockpit panels: {e}", path=str(path)) from None


def _parse(items: list[dict[str, Any]], where: str,
           fragments: dict[str, str] | None = None, text: str = "",
           check: Check | None = None) -> list[Panel]:
    out = []
    for n, item in enumerate(items):
        if isinstance(item.get("sql"), str):
            for name, frag in (fragments or {}).items():
                item = {**item, "sql": item["sql"].replace("{" + name + "}", frag)}
        try:
            panel = Panel.model_validate(item)
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            raise ConfigError(f"panel {n + 1} ({item.get('id', '?')}): {loc}: "
                              f"{err['msg'].removeprefix('Value error, ')}", path=where) from None
        for key, sql in _bound_sql(panel):
            problem = _problem(sql, panel, check)
            if problem is not None:
                raise ConfigError(f"panel {n + 1} ({panel.id}): {key}: {problem}", path=where,
                                  line=line_of(text, ("panels", n, key)) if text else None)
        out.append(panel)
    return out


def _bound_sql(panel: Panel) -> list[tuple[str, str]]:
    """The panel's SQL bound to each page level it is shown on (a sample area), and its
    trigger."""
    out = []
    for level in panel.shown_on():
        bound = panel.bound(level, None if level == "city" else "area")
        if "sql" in bound:
            out.append(("sql", str(bound["sql"])))
    if panel.trigger:
        out.append(("trigger", panel.trigger))
    return out


def _problem(sql: str, panel: Panel, check: Check | None) -> str | None:
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except (sqlglot.ParseError, sqlglot.errors.TokenError, RecursionError):
        return "not valid SQL"
    if len(statements) != 1:
        return "must be exactly one query"
    if check is not None:
        try:
            check(sql, panel.datasets)
        except ZhongshuError as e:
            return f"refused by the firewall ({e.code}): {e.message}"
    return None


def load_panels(city_root: Path, check: Check | None = None) -> list[Panel]:
    """The defaults, then scenarios' panels, then the city's ``cockpit.toml`` (which may
    replace a panel by its id, add panels, and ``hide`` some), in display order; shared SQL
    ``[fragments]`` (the defaults' and the city's) are written into the panels' SQL.

    Args:
        check: run over each panel's bound SQL (see the module's docstring).

    Raises:
        ConfigError: a panel that does not validate, whose SQL does not parse or that
            ``check`` refuses, naming the file (and the line, for a file).
    """
    defaults, text = _read(DEFAULTS)
    fragments: dict[str, str] = dict(defaults.get("fragments", {}))
    panels = {p.id: p for p in _parse(defaults["panels"], str(DEFAULTS), fragments, text,
                                      check)}
    for ep in metadata.entry_points(group=ENTRY_POINTS):
        for p in _parse(ep.load()(), f"entry point {ep.name}", fragments, check=check):
            panels[p.id] = p
    own = city_root / "cockpit.toml"
    if own.is_file():
        data, text = _read(own)
        fragments.update(data.get("fragments", {}))
        for p in _parse(data.get("panels", []), str(own), fragments, text, check):
            panels[p.id] = p
        for gone in data.get("hide", []):
            panels.pop(gone, None)
        order = data.get("order")
        if order:
            first = [panels[i] for i in order if i in panels]
            return first + [p for p in panels.values() if p.id not in order]
    return list(panels.values())
