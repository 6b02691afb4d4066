"""Source kinds: one package each under ``zhongshu/sources/<kind>/`` (``source.py`` the
adapter, ``errors.py`` its driver's errors, ``config.py`` what its configuration requires),
all sharing :class:`~zhongshu.sources.base.Source` and discovered through the
``zhongshu.sources`` entry point group (:mod:`~zhongshu.sources.registry`)."""

from __future__ import annotations

from zhongshu.sources.base import Files, NativeSQL, Reach, Source, Streaming, Subscriber
from zhongshu.sources.errors import Failure
from zhongshu.sources.registry import kind_class, kinds, open_source, open_stream

__all__ = ["Failure", "Files", "NativeSQL", "Reach", "Source", "Streaming", "Subscriber",
           "kind_class", "kinds", "open_source", "open_stream"]
