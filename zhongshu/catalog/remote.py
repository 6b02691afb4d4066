"""Remote datasets: a peer hub's offered datasets, held in this hub's catalog.

A remote dataset is owned here by the peer's member (kind ``hub``), whose member file grants
it onward like a local dataset. Its "source" is the peer itself (:class:`RemoteSource`): it
is never attached to an engine; the query layer fetches its rows through the protocol
(``zhongshu.query.remote``) and reads them under the relation name given here — one quoted
identifier made from the (pattern-checked) dataset name, so no peer-supplied text ever
becomes SQL of its own.

>>> RemoteSource.table_name("xihu_grid.events")
'zs_remote__xihu_grid__events'
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
from sqlglot import exp

from zhongshu.config import SourceConfig
from zhongshu.sources import Source

_NOWHERE = Path("/nonexistent")  # a remote source has no files here


class RemoteSource(Source):
    """A peer hub as the source of its remote datasets (never attached)."""

    kind = "hub"

    def __init__(self, peer: str) -> None:
        super().__init__(SourceConfig(name=peer, kind="hub", max_concurrency=64), _NOWHERE,
                         peer)

    @staticmethod
    def table_name(dataset: str) -> str:
        """The name a remote dataset's fetched rows are registered under."""
        if not re.fullmatch(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*", dataset):
            raise ValueError("not a dataset name")
        return "zs_remote__" + dataset.replace(".", "__")

    def attach(self, con: duckdb.DuckDBPyConnection) -> None:
        raise TypeError("a remote dataset is fetched through its hub, never attached")

    def relation(self, table: str) -> exp.Table:
        return exp.Table(this=exp.to_identifier(self.table_name(table), quoted=True))

    def probe(self) -> None:
        """Nothing to probe here: the federation's catalog sync watches the peer."""

