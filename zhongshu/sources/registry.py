"""Source kinds are discovered through the ``zhongshu.sources`` entry point group: the built-in
kinds are registered there by this package (``pyproject.toml``), exactly as a third-party
package registers its own::

    [project.entry-points."zhongshu.sources"]
    oracle = "zhongshu_oracle:Source"      # a subclass of zhongshu.sources.Source

The entry point's name is the kind a member file writes (``kind = "oracle"``); the class's
``kind`` must be the same.
"""

from __future__ import annotations

import threading
from importlib import metadata
from pathlib import Path

from zhongshu.config import MemberFile, SourceConfig, StreamConfig
from zhongshu.config.checks import SOURCE_KINDS
from zhongshu.errors import ConfigError
from zhongshu.sources.base import Source, Streaming

ENTRY_POINTS = SOURCE_KINDS
_loaded: dict[str, type[Source]] = {}
_lock = threading.Lock()


def kinds() -> list[str]:
    """The installed source kinds, by name."""
    return sorted({ep.name for ep in metadata.entry_points(group=ENTRY_POINTS)})


def kind_class(kind: str) -> type[Source]:
    """The class registered for ``kind`` (loaded once).

    Raises:
        ConfigError: no installed package registers ``kind``, or what it registers is not a
            ``Source`` of that kind.
    """
    with _lock:
        cls = _loaded.get(kind)
        if cls is not None:
            return cls
        found = [ep for ep in metadata.entry_points(group=ENTRY_POINTS) if ep.name == kind]
        if not found:
            raise ConfigError(f"no source kind `{kind}` is installed (installed: "
                              f"{', '.join(kinds()) or 'none'}); from a source checkout, "
                              "run `pip install -e .` to register the built-in kinds")
        obj = found[0].load()
        if not (isinstance(obj, type) and issubclass(obj, Source)) or obj.kind != kind:
            raise ConfigError(f"the `{ENTRY_POINTS}` entry point `{kind}` ({found[0].value}) "
                              f"is not a zhongshu.sources.Source of kind `{kind}`")
        _loaded[kind] = obj
        return obj


def open_source(config: SourceConfig, city_root: Path, owner: str) -> Source:
    """Build the adapter of a ``[[sources]]`` entry (nothing is connected yet).

    Raises:
        ConfigError: its kind is not installed, or is a streaming kind.
    """
    cls = kind_class(config.kind)
    if issubclass(cls, Streaming):
        raise ConfigError(f"source `{config.name}`: `{config.kind}` is a streaming kind; "
                          "declare it under [[streams]]")
    return cls(config, city_root, owner)


def open_stream(stream: StreamConfig, member: MemberFile, city_root: Path) -> Streaming:
    """Build the source of one of ``member``'s ``[[streams]]`` (nothing is connected yet).

    Raises:
        ConfigError: its kind is not installed, or is not a streaming kind.
    """
    cls = kind_class(stream.kind)
    if not issubclass(cls, Streaming):
        raise ConfigError(f"stream `{stream.name}`: `{stream.kind}` is not a streaming kind")
    return cls(stream, member, city_root)
