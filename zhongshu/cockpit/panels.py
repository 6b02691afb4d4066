"""Declared cockpit panels: the defaults shipped here, a city's own ``cockpit.toml``, and
scenarios' panels (the ``zhongshu.cockpit_panels`` entry point group: a callable returning
a list of panel dicts); bound to one page's level and area.

A panel's SQL is configuration, checked when the panels are loaded: bound to each page level
it is shown on (and its ``trigger``), it must parse as one statement; and, given a ``check``
(the firewall, as a viewer who may read exactly the panel's declared ``datasets``: see
``zhongshu.policy.owners.panel_checker``, which this part may not import), pass it — an error
names the file and the line of the panel's ``sql``. A page runs it as its viewer.

A city's ``cockpit.toml`` is checked whole (:class:`CockpitFile`): its keys, its panels, the
datasets they read (the city's own, given them), and the panels it asks to be made — residents
and area from a declared dataset (``[population]``), one for each dataset no other panel reads
(``dataset_panels``). A default or scenario panel of datasets the city lacks is loaded but not
served (:func:`served`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Collection, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import sqlglot
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from zhongshu.config import DatasetConfig
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
           check: Check | None = None, shipped: bool = False) -> list[Panel]:
    """The panels of ``items``, validated and their SQL checked.

    ``shipped`` (the defaults, scenarios' panels): written for a dataset's usual shape, so a
    level whose bound SQL ``check`` refuses here (a city's ``parks.trees`` without a
    ``street`` column) is left out of the panel's levels, and a panel with no level left (or
    whose trigger is refused) is left out; SQL that does not parse still raises."""
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
            at = ("panels", n, *err["loc"][:1])
            raise ConfigError(f"panel {n + 1} ({item.get('id', '?')}): {loc}: "
                              f"{err['msg'].removeprefix('Value error, ')}", path=where,
                              line=line_of(text, at) if text else None) from None
        refused: set[Level | None] = set()
        for key, level, sql in _bound_sql(panel):
            problem, by_firewall = _problem(sql, panel, check)
            if problem is None:
                continue
            if shipped and by_firewall:
                refused.add(level)
                continue
            raise ConfigError(f"panel {n + 1} ({panel.id}): {key}: {problem}", path=where,
                              line=line_of(text, ("panels", n, key)) if text else None)
        if refused:
            levels = [lv for lv in panel.shown_on() if lv not in refused]
            if not levels or None in refused:
                continue
            panel = panel.model_copy(update={"levels": levels})
        out.append(panel)
    return out


def _bound_sql(panel: Panel) -> list[tuple[str, Level | None, str]]:
    """The panel's SQL bound to each page level it is shown on (a sample area), and its
    trigger (level ``None``)."""
    out: list[tuple[str, Level | None, str]] = []
    for level in panel.shown_on():
        bound = panel.bound(level, None if level == "city" else "area")
        if "sql" in bound:
            out.append(("sql", level, str(bound["sql"])))
    if panel.trigger:
        out.append(("trigger", None, panel.trigger))
    return out


def _problem(sql: str, panel: Panel, check: Check | None) -> tuple[str | None, bool]:
    """What is wrong with one bound SQL of ``panel``, if anything, and whether it is the
    firewall's refusal (rather than SQL that does not parse)."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except (sqlglot.ParseError, sqlglot.errors.TokenError, RecursionError):
        return "not valid SQL", False
    if len(statements) != 1:
        return "must be exactly one query", False
    if check is not None:
        try:
            check(sql, panel.datasets)
        except ZhongshuError as e:
            return f"refused by the firewall ({e.code}): {e.message}", True
    return None, False


class _Population(BaseModel):
    """Where residents and area of one level's areas are read from (``[population]``)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(description="a dataset with one row per area")
    area: str = Field(pattern=r"^[a-z_][a-z0-9_]*$", description="its column naming the area")
    residents: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_]*$")
    area_km2: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_]*$")


class CockpitFile(BaseModel):
    """A city's ``cockpit.toml``: its own panels and settings (docs/cockpit.md)."""

    model_config = ConfigDict(extra="forbid")

    panels: list[dict[str, Any]] = []
    fragments: dict[str, str] = {}
    hide: list[str] = []
    order: list[str] = []
    dataset_panels: bool = Field(default=False, description="a panel for each dataset no "
                                 "other panel reads (rows, by area where it has an area column)")
    population: dict[Literal["districts", "streets"], _Population] = Field(
        default={}, description="residents and area per district (and street) from a dataset; "
        "none shown without")


def _cockpit_file(path: Path) -> tuple[CockpitFile, str]:
    data, text = _read(path)
    try:
        return CockpitFile.model_validate(data), text
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key `{loc[-1]}` (see docs/cockpit.md for the keys)"
        raise ConfigError(f"{'.'.join(str(x) for x in loc)}: {msg}", path=str(path),
                          line=line_of(text, loc)) from None


def load_panels(city_root: Path, check: Check | None = None,
                datasets: Mapping[str, DatasetConfig] | None = None) -> list[Panel]:
    """The defaults, then scenarios' panels, then the city's ``cockpit.toml`` (which may
    replace a panel by its id, add panels, and ``hide`` some), in display order, then the
    panels it asks to be made (``population``, ``dataset_panels``); shared SQL
    ``[fragments]`` (the defaults' and the city's) are written into the panels' SQL.

    Args:
        check: run over each panel's bound SQL (see the module's docstring).
        datasets: the city's datasets; given, a panel of the city's own ``cockpit.toml`` must
            read only these (the defaults and scenarios' panels that read others are kept:
            they are not served, :func:`served`), and the made panels can be made.

    Raises:
        ConfigError: a panel that does not validate, whose SQL does not parse or that
            ``check`` refuses, or a ``cockpit.toml`` key that is not one, naming the file (and
            the line, for a file).
    """
    defaults, text = _read(DEFAULTS)
    fragments: dict[str, str] = dict(defaults.get("fragments", {}))
    panels = {p.id: p for p in _parse(defaults["panels"], str(DEFAULTS), fragments, text,
                                      check, shipped=True)}
    for ep in metadata.entry_points(group=ENTRY_POINTS):
        for p in _parse(ep.load()(), f"entry point {ep.name}", fragments, check=check,
                        shipped=True):
            panels[p.id] = p
    own = city_root / "cockpit.toml"
    if not own.is_file():
        return list(panels.values())
    cf, text = _cockpit_file(own)
    fragments.update(cf.fragments)
    for n, p in enumerate(_parse(cf.panels, str(own), fragments, text, check)):
        unknown = [d for d in p.datasets if datasets is not None and d not in datasets]
        if unknown:
            raise ConfigError(f"panel {n + 1} ({p.id}): datasets: no dataset `{unknown[0]}` in "
                              "this city (`zhongshu catalog list` shows them)", path=str(own),
                              line=line_of(text, ("panels", n, "datasets")))
        panels[p.id] = p
    for gone in cf.hide:
        panels.pop(gone, None)
    if datasets is not None:
        made = made_panels(cf, datasets, [p for p in panels.values() if served(p, datasets)],
                           own, text)
        for key, items in made:
            for p in _parse(items, str(own), check=check):
                if p.id in panels:
                    raise ConfigError(f"{key}: makes panel `{p.id}`, which is also declared; "
                                      "rename or hide that one", path=str(own),
                                      line=line_of(text, (key,)))
                panels[p.id] = p
    if cf.order:
        first = [panels[i] for i in cf.order if i in panels]
        return first + [p for p in panels.values() if p.id not in cf.order]
    return list(panels.values())


def served(panel: Panel, datasets: Collection[str]) -> bool:
    """Whether the city has every dataset ``panel`` reads (a panel of another city's datasets
    is not served)."""
    return all(d in datasets for d in panel.datasets)


def made_panels(cf: CockpitFile, datasets: Mapping[str, DatasetConfig],
                others: Sequence[Panel], path: Path | None = None, text: str = ""
                ) -> list[tuple[str, list[dict[str, Any]]]]:
    """The panels ``cf`` asks to be made, by the key that asks: residents and area from the
    ``population`` datasets, and one per dataset no panel of ``others`` reads
    (``dataset_panels``).

    Raises:
        ConfigError: a ``population`` dataset or column the city does not have, naming
            ``path`` and the line in its ``text``.
    """
    def fault(level: str, key: str, message: str) -> ConfigError:
        return ConfigError(f"population.{level}.{key}: {message}",
                           path=str(path) if path else None,
                           line=line_of(text, (f"population.{level}", key)) if text else None)

    out: list[tuple[str, list[dict[str, Any]]]] = []
    items: list[dict[str, Any]] = []
    for level, pop in cf.population.items():
        ds = datasets.get(pop.dataset)
        if ds is None:
            raise fault(level, "dataset", f"no dataset `{pop.dataset}` in this city "
                        "(`zhongshu catalog list` shows them)")
        names = {c.name for c in ds.columns}
        cols = [(c, k) for k in ("area", "residents", "area_km2")
                if (c := getattr(pop, k)) is not None]
        missing = [(c, k) for c, k in cols if c not in names]
        if missing:
            c, k = missing[0]
            raise fault(level, k, f"`{pop.dataset}` has no column `{c}`; its columns: "
                        f"{', '.join(sorted(names))}")
        figures = [f"sum({pop.residents}) AS residents"] if pop.residents else []
        if pop.area_km2:
            figures.append(f"round(sum({pop.area_km2}), 1) AS area_km2")
        if not figures:
            continue
        one = level[:-1]
        items.append({"id": f"population-{level}", "group": "population",
                      "title": "Residents and area" if pop.area_km2 else "Residents",
                      "title_zh": "人口与面积" if pop.area_km2 else "人口", "kind": "number",
                      "datasets": [pop.dataset], "area": {one: pop.area},
                      "levels": ["city", "district"] if one == "district" else ["street"],
                      "sql": f"SELECT {', '.join(figures)} FROM {pop.dataset} WHERE {{where}}"})
    if items:
        out.append(("population", items))
    if cf.dataset_panels:
        read = {d for p in others for d in p.datasets}
        out.append(("dataset_panels", [p for name, ds in sorted(datasets.items())
                                       if name not in read for p in _dataset_panels(ds)]))
    return out


def _dataset_panels(ds: DatasetConfig) -> list[dict[str, Any]]:
    """Rows of one dataset: by district on the city page and counted on a district's page
    where it has an area column, counted on the city page where it has none."""
    title = ds.title or ds.name
    pid = "dataset-" + ds.name.replace(".", "-").replace("_", "-")
    panel: dict[str, Any] = {"group": ds.name.split(".")[0], "datasets": [ds.name]}
    count = {**panel, "id": pid, "title": title, "title_zh": f"{title}（条数）",
             "kind": "number", "sql": f"SELECT count(*) AS records FROM {ds.name} WHERE {{where}}"}
    if ds.area_column is None:
        return [{**count, "levels": ["city"]}]
    return [{**panel, "id": f"{pid}-areas", "title": f"{title} by area",
             "title_zh": f"{title}（按区域）", "kind": "bar", "levels": ["city"],
             "child": {"city": ds.area_column},
             "sql": f"SELECT {{child}} AS area, count(*) AS records FROM {ds.name} "
                    "GROUP BY 1 ORDER BY 1"},
            {**count, "levels": ["district"], "area": {"district": ds.area_column}}]
