"""Source kinds: one package each under ``zhongshu/sources/<kind>/``, sharing ``base.Source``."""

from __future__ import annotations

import importlib
from pathlib import Path

from zhongshu.config import SourceConfig
from zhongshu.sources.base import Source

KINDS = ("sqlite", "postgres", "mysql", "parquet", "csv")


def open_source(config: SourceConfig, city_root: Path, owner: str) -> Source:
    """Build the adapter for ``config.kind`` (nothing is connected yet)."""
    module = importlib.import_module(f"zhongshu.sources.{config.kind}")
    cls: type[Source] = module.Source
    return cls(config, city_root, owner)


__all__ = ["KINDS", "Source", "open_source"]
