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

from zhongshu.config import Column, DatasetConfig, SourceConfig
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


class UnionSource(RemoteSource):
    """The peers of a union dataset: ``parts`` maps each part (a remote dataset's name) to
    the value of the union's peer column for its rows (the peer's namespace)."""

    def __init__(self, union: str, parts: dict[str, str]) -> None:
        super().__init__("union-" + union.replace(".", "-").replace("_", "-"))
        self.parts = dict(parts)

    def relation(self, table: str) -> exp.Table:
        # the union's query names each part by its one-part name (dots as ``__``)
        return exp.Table(this=exp.to_identifier(f"zs_remote__{table}", quoted=True))


def union_config(name: str, column: str, parts: dict[str, DatasetConfig], title: str = "",
                 description: str = "", listed: bool = True,
                 every: dict[str, str] | None = None) -> DatasetConfig | None:
    """The union dataset over ``parts`` (peer namespace → its part's configuration, those
    offered now): the peer column, then each column every part offers with one type (its
    most protective classification), as ``SELECT '<ns>' AS <column>, … FROM <part> UNION
    ALL …`` over ``every`` part declared (namespace → dataset; default: ``parts``' — one not
    offered now reads as empty, or fails the query, at run time); None when the parts share
    no column.

    >>> from zhongshu.config import Column
    >>> def part(n, *cols):
    ...     return DatasetConfig(name=f"{n}_grid.events", source=f"hub-{n}",
    ...                          table=f"{n}_grid.events", columns=[Column(name=c, type="BIGINT")
    ...                                                             for c in cols])
    >>> u = union_config("grid.events", "district", {"xihu": part("xihu", "a", "b"),
    ...                                               "binjiang": part("binjiang", "b")})
    >>> [c.name for c in u.columns]
    ['district', 'b']
    >>> print(u.query.replace(" UNION ALL ", chr(10) + "UNION ALL "))
    SELECT 'xihu' AS "district", "b" FROM xihu_grid__events
    UNION ALL SELECT 'binjiang' AS "district", "b" FROM binjiang_grid__events
    """
    order = ["public", "internal", "personal", "sensitive"]
    first = next(iter(parts.values()))
    shared: list[Column] = []
    for col in first.columns:
        same = [next((c for c in p.columns if c.name == col.name), None)
                for p in parts.values()]
        if col.name == column or any(c is None or c.type != col.type for c in same):
            continue
        worst = max((c.classification for c in same if c is not None), key=order.index)
        shared.append(Column(name=col.name, type=col.type, classification=worst,
                             description=col.description))
    if not shared:
        return None
    names = ", ".join(exp.to_identifier(c.name, quoted=True).sql("duckdb") for c in shared)
    label = exp.to_identifier(column, quoted=True).sql("duckdb")
    every = every or {ns: p.name for ns, p in parts.items()}
    selects = [f"SELECT {exp.Literal.string(ns).sql('duckdb')} AS {label}, {names} FROM "
               f"{part.replace('.', '__')}" for ns, part in every.items()]
    return DatasetConfig(name=name, title=title, description=description,
                         source="union-" + name.replace(".", "-").replace("_", "-"),
                         query=" UNION ALL ".join(selects),
                         columns=[Column(name=column, type="VARCHAR", classification="public",
                                         description="the district (peer hub) of the row"),
                                  *shared], listed=listed)

