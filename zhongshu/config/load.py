"""Loading a city folder: each file read as TOML, validated against its schema (an error names
the file and line), stream aggregates turned into datasets, then the city-wide checks."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from zhongshu.config._lines import line_of
from zhongshu.config.checks import CHECKS
from zhongshu.config.schema import City, CityFile, MemberFile
from zhongshu.config.settings import env_overrides
from zhongshu.config.streams import with_stream_datasets
from zhongshu.errors import ConfigError


def parse(path: Path, model: type[BaseModel]) -> Any:
    """``path`` read as TOML and validated as ``model``.

    Raises:
        ConfigError: naming the file, the line where possible, and what to change.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read: {e.strerror}", path=str(path)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise ConfigError(f"not valid TOML: {e}", path=str(path),
                          line=int(m.group(1)) if m else None) from None
    try:
        return model.model_validate(data)
    except ValidationError as e:
        errors = e.errors()
        # a value that may be one of several shapes (a mask: a table, or one of a few
        # names) fails once per shape: the list of names is what a person can act on
        err = next((x for x in errors if x["type"] == "literal_error"), errors[0])
        # pydantic names the shapes it tried in the location (``function-after[…]``,
        # ``literal['a','b']``): they are not keys of the file
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        field = ".".join(str(p) for p in loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key `{loc[-1]}` (check its spelling against docs/configuration.md)"
        elif err["type"] == "missing":
            msg = f"`{loc[-1]}` is required"
        elif err["type"] == "literal_error":
            msg = (f"`{err['input']}` is not one of "
                   f"{str(err['ctx']['expected']).replace(chr(39), '`')}")
        raise ConfigError(f"{field}: {msg}", path=str(path), line=line_of(text, loc)) from None


def check_areas(cf: CityFile, path: Path) -> None:
    """Districts and streets are named (and coded) once each, and each street lies in a
    declared district.

    Raises:
        ConfigError: naming ``city.toml``, the line and the fix.
    """
    text = path.read_text(encoding="utf-8")
    seen: dict[str, str] = {}
    areas = [("districts", i, a) for i, a in enumerate(cf.districts)] + \
        [("streets", i, a) for i, a in enumerate(cf.streets)]
    for table, i, area in areas:
        for key in ("name", "code"):
            value = getattr(area, key)
            if not value:
                continue
            if value in seen:
                raise ConfigError(f"{table}[{i}].{key}: `{value}` is also the name or code of "
                                  f"{seen[value]}: each area has its own", path=str(path),
                                  line=line_of(text, (table, i, key)))
            seen[value] = f"the {table[:-1]} `{area.name}`"
    districts = {d.name for d in cf.districts}
    for i, street in enumerate(cf.streets):
        if street.district not in districts:
            raise ConfigError(f"streets[{i}].district: no district `{street.district}` is "
                              "declared; add it under [[districts]] or correct the name",
                              path=str(path), line=line_of(text, ("streets", i, "district")))


def load_city(root: str | os.PathLike[str]) -> City:
    """Load and cross-check a city folder.

    Raises:
        ConfigError: naming the file, the line where possible, and what to change.
    """
    root = Path(root).resolve()
    city_file = root / "city.toml"
    if not city_file.is_file():
        raise ConfigError("no city.toml here; create one with `zhongshu init NAME`",
                          path=str(root))
    cf: CityFile = parse(city_file, CityFile)
    check_areas(cf, city_file)
    hub = env_overrides(cf.hub)
    ledger = env_overrides(cf.ledger, "ZHONGSHU_LEDGER_")
    store = env_overrides(cf.store, "ZHONGSHU_STORE_")
    members: dict[str, MemberFile] = {}
    files: dict[str, Path] = {}
    for other in sorted((root / "members").glob("*")):
        if other.is_file() and other.suffix != ".toml" and not other.name.endswith(
                ".example") and not other.name.startswith("."):
            raise ConfigError("not a member file: member files end in .toml (rename it; or "
                              "end its name in .example to keep it as an example)",
                              path=str(other))
    for path in sorted((root / "members").glob("*.toml")):
        mf = with_stream_datasets(parse(path, MemberFile), path, store)
        if mf.member.name != path.stem:
            text = path.read_text(encoding="utf-8")
            raise ConfigError(f"[member] name `{mf.member.name}` differs from the file's name: "
                              f"name the file {mf.member.name}.toml, or the member "
                              f"`{path.stem}`", path=str(path),
                              line=line_of(text, ("member", "name")))
        if mf.member.name in members:
            raise ConfigError(f"member `{mf.member.name}` is also declared in "
                              f"{files[mf.member.name].name}", path=str(path))
        members[mf.member.name] = mf
        files[mf.member.name] = path
    city = City(root=root, info=cf.city, hub=hub, districts=cf.districts, streets=cf.streets,
                members=members,
                member_files=files, ledger=ledger, store=store, people=cf.people,
                federation=cf.federation)
    for check in CHECKS:
        check(city)
    return city
