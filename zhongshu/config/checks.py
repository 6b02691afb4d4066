"""What spans the files of a city, checked once all are loaded: names unique city-wide,
datasets on their member's own sources, grants on real datasets and columns, and source kinds
that are installed and configured as they require.

Like sqlglot's optimizer rules, the checks are a tuple of functions of one signature
(:data:`CHECKS`), each raising ``ConfigError`` with the file, the line and the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import metadata

from zhongshu.config._lines import find, line_of
from zhongshu.config.schema import City, DatasetConfig, MemberFile, SourceConfig, StreamConfig
from zhongshu.config.streams import stream_columns
from zhongshu.errors import ConfigError

SOURCE_KINDS = "zhongshu.sources"  # the entry point group of source kinds


def unique_names(city: City) -> None:
    """Streams, sources and datasets are named once city-wide; a dataset reads a source of its
    own member."""
    sources: dict[str, str] = {}
    datasets: dict[str, str] = {}
    streams: dict[str, str] = {}
    for name, mf in city.members.items():
        path = city.member_files[name]
        text = path.read_text(encoding="utf-8")
        for stream in stream_columns(mf):
            if stream in streams:
                raise ConfigError(f"stream `{stream}` is already declared by member "
                                  f"`{streams[stream]}`; stream names are city-wide",
                                  path=str(path), line=find(text, f'"{stream}"'))
            streams[stream] = name
        for s in mf.sources:
            if s.name in sources:
                raise ConfigError(f"source `{s.name}` is already declared by member "
                                  f"`{sources[s.name]}`; source names are city-wide",
                                  path=str(path), line=find(text, f'"{s.name}"'))
            sources[s.name] = name
        own = {s.name for s in mf.sources}
        for d in mf.datasets:
            if d.source not in own:
                raise ConfigError(f"dataset `{d.name}` uses source `{d.source}`, which this "
                                  "member does not declare (declared: "
                                  f"{', '.join(sorted(own)) or 'none'})",
                                  path=str(path), line=find(text, f'"{d.source}"'))
            if d.name in datasets:
                raise ConfigError(f"dataset `{d.name}` is already declared by member "
                                  f"`{datasets[d.name]}`", path=str(path),
                                  line=find(text, f'"{d.name}"'))
            datasets[d.name] = name


def grants(city: City) -> None:
    """Each grant names a member of the city, the owner's own datasets and their columns, and
    grants a dataset at most once per consumer and purpose."""
    declared = {d.name: d for mf in city.members.values() for d in mf.datasets}
    for name, mf in city.members.items():
        _check_grants(city, name, mf, declared)


def _check_grants(city: City, owner: str, mf: MemberFile,
                  declared: dict[str, DatasetConfig]) -> None:
    path = city.member_files[owner]
    text = path.read_text(encoding="utf-8")
    seen: set[tuple[str, str, str]] = set()
    for g in mf.grants:
        line = find(text, f'"{g.consumer}"')

        def fail(msg: str, line: int | None = line, consumer: str = g.consumer) -> None:
            raise ConfigError(f"grant to `{consumer}`: {msg}", path=str(path), line=line)

        if g.consumer not in city.members:
            fail(f"no member `{g.consumer}` in this city")
        if g.consumer == owner:
            fail("an owner needs no grant on its own datasets")
        own = {d.name for d in mf.datasets}
        for ds in g.datasets:
            if ds not in own:
                fail(f"`{ds}` is not a dataset of `{owner}`; a member grants only its own "
                     "datasets")
            cols = {c.name for c in declared[ds].columns}
            for col in list(g.columns or []) + list(g.masking):
                if col not in cols and len(g.datasets) == 1:
                    fail(f"`{ds}` has no column `{col}`", find(text, col))
            for purpose in g.purposes:
                key = (g.consumer, ds, purpose)
                if key in seen:
                    fail(f"`{ds}` is granted twice for purpose `{purpose}`; merge the grants")
                seen.add(key)
        if isinstance(g.row_scope, dict):
            for ds in g.row_scope:
                if ds not in g.datasets:
                    fail(f"row_scope names `{ds}`, which this grant does not cover")


def source_kinds(city: City) -> None:
    """Each source and stream is of an installed kind (entry point group ``zhongshu.sources``)
    and configured as that kind requires (its ``check_config``: a file kind needs ``path``, a
    database kind ``database``, a stream kind is declared under ``[[streams]]``)."""
    installed = {ep.name: ep for ep in metadata.entry_points(group=SOURCE_KINDS)}
    for name, mf in city.members.items():
        path = city.member_files[name]
        text: str | None = None
        tables: list[tuple[str, Sequence[SourceConfig | StreamConfig]]] = [
            ("sources", mf.sources), ("streams", mf.streams)]
        for table, configs in tables:
            for i, cfg in enumerate(configs):
                problem = _kind_problem(installed, cfg)
                if problem is not None:
                    text = text if text is not None else path.read_text(encoding="utf-8")
                    raise ConfigError(f"{table}.{i}: {problem}", path=str(path),
                                      line=line_of(text, (table, i, "kind")))


def _kind_problem(installed: dict[str, metadata.EntryPoint],
                  cfg: SourceConfig | StreamConfig) -> str | None:
    ep = installed.get(cfg.kind)
    if ep is None:
        have = ", ".join(sorted(installed)) or "none"
        return (f"no source kind `{cfg.kind}` is installed (installed: {have}); a kind comes "
                "with the package that registers it in the `zhongshu.sources` entry point "
                "group (from a source checkout: `pip install -e .`)")
    try:
        cls = ep.load()
    except ImportError as e:
        return (f"source kind `{cfg.kind}` cannot be loaded ({e}); install its driver, e.g. "
                f"`pip install 'zhongshu[{cfg.kind}]'`")
    try:
        cls.check_config(cfg)
    except ValueError as e:
        return str(e)
    return None


CHECKS: tuple[Callable[[City], None], ...] = (source_kinds, unique_names, grants)
"""Run in this order by :func:`zhongshu.config.load.load_city`; each raises ``ConfigError``."""
