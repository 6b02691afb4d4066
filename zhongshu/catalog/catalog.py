"""The catalog: members, sources and datasets of one city, and each dataset's health.

A dataset is a named, typed view over one source. Its *relation* is the SELECT that turns the
source's own table (or query) into the dataset's columns — the same definition serves the
DuckDB path (source attached under an alias) and the pushdown path (the source's own SQL).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import duckdb
import sqlglot
from sqlglot import exp

from zhongshu.config import City, Column, DatasetConfig, MemberFile
from zhongshu.errors import ConfigError
from zhongshu.sources import NativeSQL, Source, open_source
from zhongshu.sources.base import compatible
from zhongshu.stores import MetadataStore

Status = Literal["ok", "drift", "source_down"]


@dataclass
class Dataset:
    """One dataset as the hub serves it."""

    name: str
    owner: str
    config: DatasetConfig
    source: Source
    status: Status = "ok"
    reason: str = ""
    observed: dict[str, str] = field(default_factory=dict)
    _exprs: dict[str, exp.Expr] = field(default_factory=dict, repr=False)

    @property
    def listed(self) -> bool:
        return self.config.listed

    @property
    def columns(self) -> list[Column]:
        return self.config.columns

    def column(self, name: str) -> Column | None:
        """The declared column called ``name`` (case-insensitive), or None."""
        low = name.lower()
        return next((c for c in self.config.columns if c.name == low), None)

    def column_expr(self, column: Column) -> exp.Expr:
        """The column's defining expression over the source (parsed once)."""
        e = self._exprs.get(column.name)
        if e is None:
            if column.expr:
                try:
                    e = sqlglot.parse_one(column.expr, read="duckdb")
                except sqlglot.ParseError as err:
                    raise ConfigError(f"dataset `{self.name}` column `{column.name}`: expr is "
                                      f"not valid SQL: {err}") from None
            else:
                e = exp.column(column.name, quoted=True)
            self._exprs[column.name] = e
        return e.copy()

    def relation(self, native: bool, columns: list[str] | None = None) -> exp.Select:
        """``SELECT <column exprs> FROM <source relation>`` for the chosen path.

        Args:
            native: build for the source's own engine instead of DuckDB.
            columns: only these columns (default: all declared).
        """
        if not native:
            rel = self.source.relation
        elif isinstance(self.source, NativeSQL):
            rel = self.source.native_relation
        else:
            raise TypeError(f"source `{self.source.name}` has no SQL engine of its own")
        if self.config.table:
            frm: exp.Expression = rel(self.config.table)
        else:
            assert self.config.query
            q = sqlglot.parse_one(self.config.query, read="duckdb")
            q = q.transform(lambda n: rel(n.name) if isinstance(n, exp.Table) and not n.db
                            else n)
            frm = exp.Subquery(this=q, alias=exp.TableAlias(this=exp.to_identifier("_src")))
        wanted = columns if columns is not None else [c.name for c in self.config.columns]
        select = exp.Select().from_(frm)
        for name in wanted:
            col = self.column(name)
            assert col is not None, name
            select = select.select(exp.alias_(self.column_expr(col), col.name, quoted=True),
                                   copy=False)
        return select


@dataclass
class Member:
    name: str
    kind: str
    title: str
    roles: list[str]


class Catalog:
    """Members, sources and datasets of a city, built from its configuration."""

    def __init__(self, city: City, store: MetadataStore) -> None:
        self.city = city
        self.store = store
        self.members: dict[str, Member] = {}
        self.sources: dict[str, Source] = {}
        self.datasets: dict[str, Dataset] = {}
        for mf in city.members.values():
            self._add_member(mf)

    def _add_member(self, mf: MemberFile) -> None:
        m = mf.member
        self.members[m.name] = Member(m.name, m.kind, m.title, list(m.roles))
        self.store.upsert_member(m.name, m.kind, m.title, list(m.roles))
        for sc in mf.sources:
            self.sources[sc.name] = open_source(sc, self.city.root, m.name)
        for dc in mf.datasets:
            self.datasets[dc.name] = Dataset(dc.name, m.name, dc, self.sources[dc.source])

    def dataset(self, name: str) -> Dataset | None:
        """The dataset called ``name`` (case-insensitive), or None."""
        return self.datasets.get(name.lower())

    # --- schema drift ---------------------------------------------------------------------

    def check(self, only_source: str | None = None) -> dict[str, Dataset]:
        """Compare every dataset's declared columns with what its source holds now.

        A dataset whose source has lost a column, or retyped one beyond its type family, is
        marked ``drift`` and will not be served; one whose source is down is marked
        ``source_down``. Results are stored in the metadata store.
        """
        by_source: dict[str, list[Dataset]] = {}
        for d in self.datasets.values():
            if only_source is None or d.source.name == only_source:
                by_source.setdefault(d.source.name, []).append(d)
        for source_name, datasets in by_source.items():
            source = self.sources[source_name]
            con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                         "autoload_known_extensions": False})
            try:
                try:
                    source.attach(con)
                except Exception as e:
                    for d in datasets:
                        self._mark(d, "source_down", source.unavailable_message(e), {})
                    continue
                for d in datasets:
                    self._check_one(con, d)
            finally:
                con.close()
        return self.datasets

    def _check_one(self, con: duckdb.DuckDBPyConnection, d: Dataset) -> None:
        observed: dict[str, str] = {}
        problems: list[str] = []
        for col in d.columns:
            sql = d.relation(native=False, columns=[col.name]).sql("duckdb")
            try:
                observed[col.name] = con.execute(f"DESCRIBE {sql}").fetchall()[0][1]
            except duckdb.Error as e:
                msg = str(e).splitlines()[0]
                problems.append(f"column `{col.name}` cannot be read from source "
                                f"`{d.source.name}` ({d.source.redact(msg)})")
                continue
            if not compatible(col.type, observed[col.name]):
                problems.append(f"column `{col.name}` is declared {col.type} but the source "
                                f"now holds {observed[col.name]}")
        if problems:
            self._mark(d, "drift", "; ".join(problems) + f". Update the dataset in the member "
                       f"file of `{d.owner}` or ask the department what changed.", observed)
        else:
            self._mark(d, "ok", "", observed)

    def _mark(self, d: Dataset, status: Status, reason: str, observed: dict[str, str]) -> None:
        d.status, d.reason, d.observed = status, reason, observed
        self.store.record_dataset(d.name, d.owner, d.source.name, d.listed, status, reason,
                                  observed)
