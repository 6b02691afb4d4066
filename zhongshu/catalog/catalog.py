"""The catalog: members, sources and datasets of one city, and each dataset's health.

A dataset is a named, typed view over one source. Its *relation* is the SELECT that turns the
source's own table (or query) into the dataset's columns — the same definition serves the
DuckDB path (source attached under an alias) and the pushdown path (the source's own SQL).

A dataset's definition is its owner's SQL over its own system, and is held to that here, when
the catalog is built: a ``query =`` is one query whose every table is, in its own SQL scope,
either a CTE visible at that point or a table of the dataset's own source (a one-part name,
which the relation turns into that source's table — never a qualified name that would reach
another source or database); a column's ``expr`` is one scalar expression over the source
row (no subquery, table, aggregate, window or qualified column). Which functions they may
call is the firewall's allow-list, checked by ``zhongshu.policy.owners``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

from zhongshu.config import City, Column, DatasetConfig, MemberFile
from zhongshu.config.checks import column_line, dataset_line
from zhongshu.errors import ConfigError
from zhongshu.sources import NativeSQL, Source, open_source
from zhongshu.sources.base import compatible
from zhongshu.stores import MetadataStore

Status = Literal["ok", "drift", "invalid", "source_down"]
_SOURCE_TABLE = "zhongshu_source_table"  # meta mark of a query's tables that are the source's


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
    _query: exp.Query | None = field(default=None, repr=False)

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
        """The column's defining expression over the source (parsed and checked once).

        Raises:
            ConfigError: the ``expr`` is not one scalar expression over the source row
                (see the module's docstring).
        """
        e = self._exprs.get(column.name)
        if e is None:
            e = expr_definition(column.expr) if column.expr else \
                exp.column(column.name, quoted=True)
            self._exprs[column.name] = e
        return e.copy()

    def query_definition(self) -> exp.Query | None:
        """The dataset's ``query =`` (parsed and checked once), its source tables marked; None
        for a dataset over a table.

        Raises:
            ConfigError: it is not one query reading only its own source (module docstring).
        """
        if self.config.query is None:
            return None
        if self._query is None:
            self._query = query_definition(self.config.query)
        return self._query.copy()

    def typed_expr(self, column: Column) -> exp.Expr:
        """The column's expression, cast to its declared type where the source holds another
        type of the same family (a SQLite column declared ``DECIMAL(10,2)`` holds doubles;
        a CSV's money is read as DOUBLE): the catalog's type is the type answered, on every
        path. The source's type is the one the last drift check observed."""
        e = self.column_expr(column)
        held = self.observed.get(column.name)
        if held is None or same_type(column.type, held) or not compatible(column.type, held):
            return e
        return exp.Cast(this=e, to=exp.DataType.build(column.type, dialect="duckdb"))

    def relation(self, native: bool, columns: list[str] | None = None,
                 typed: bool = True) -> exp.Select:
        """``SELECT <column exprs> FROM <source relation>`` for the chosen path.

        Args:
            native: build for the source's own engine instead of DuckDB.
            columns: only these columns (default: all declared).
            typed: each column of its declared type (:meth:`typed_expr`); False: as the
                source holds it (what the drift check observes).
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
            query = self.query_definition()
            assert query is not None

            def source(n: exp.Expr) -> exp.Expr:
                # only the tables that are the source's, in their own scope (no CTE)
                if not isinstance(n, exp.Table) or not n.meta.get(_SOURCE_TABLE):
                    return n
                table = rel(n.name)
                if n.args.get("alias") is not None:
                    table.set("alias", n.args["alias"])
                return table

            frm = exp.Subquery(this=query.transform(source),
                               alias=exp.TableAlias(this=exp.to_identifier("_src")))
        wanted = columns if columns is not None else [c.name for c in self.config.columns]
        select = exp.Select().from_(frm)
        for name in wanted:
            col = self.column(name)
            assert col is not None, name
            e = self.typed_expr(col) if typed else self.column_expr(col)
            select = select.select(exp.alias_(e, col.name, quoted=True), copy=False)
        return select


def same_type(a: str, b: str) -> bool:
    """Whether two DuckDB type names name one type (``decimal(10, 2)``, ``DECIMAL(10,2)``).

    >>> same_type("decimal(10, 2)", "DECIMAL(10,2)"), same_type("DOUBLE", "DECIMAL(10,2)")
    (True, False)
    """
    try:
        return bool(exp.DataType.build(a, dialect="duckdb") ==
                    exp.DataType.build(b, dialect="duckdb"))
    except (sqlglot.ParseError, ValueError):
        return a.replace(" ", "").upper() == b.replace(" ", "").upper()


def _one(text: str, what: str) -> exp.Expr:
    try:
        found = [e for e in sqlglot.parse(text, read="duckdb") if e is not None]
    except (sqlglot.ParseError, sqlglot.errors.TokenError, RecursionError):
        raise ConfigError(f"{what} is not valid SQL") from None
    if len(found) != 1:
        raise ConfigError(f"{what} must be exactly one SQL {what.split()[-1]}")
    return found[0]


def query_definition(text: str) -> exp.Query:
    """A dataset's ``query =`` parsed, with each table that is its source's marked.

    >>> q = query_definition("WITH t AS (SELECT a FROM things) SELECT a FROM t")
    >>> [(t.name, bool(t.meta.get(_SOURCE_TABLE))) for t in q.find_all(exp.Table)]
    [('t', False), ('things', True)]
    >>> query_definition("SELECT * FROM other_source.things")
    Traceback (most recent call last):
    ...
    zhongshu.errors.ConfigError: query: `other_source.things` is not a table of the dataset's \
own source; a dataset's query reads its own source's tables, by their one-part names

    Raises:
        ConfigError: not one query (SELECT, WITH … SELECT or a set operation of them); a table
            function; a qualified table name; a table no scope can place.
    """
    q = _one(text, "query: the query")
    if not isinstance(q, (exp.Select, exp.SetOperation)):
        raise ConfigError("query: a dataset's query is one SELECT over its source's tables")
    placed: set[int] = set()
    for scope in traverse_scope(q):
        for table in scope.tables:
            placed.add(id(table))
            if isinstance(scope.sources.get(table.alias_or_name), Scope):
                continue  # a CTE visible at this point
            if not isinstance(table.this, exp.Identifier):
                raise ConfigError("query: table functions are not allowed in a dataset's "
                                  "query; name the source's tables")
            if table.args.get("db") is not None or table.args.get("catalog") is not None:
                raise ConfigError(f"query: `{table.sql('duckdb')}` is not a table of the "
                                  "dataset's own source; a dataset's query reads its own "
                                  "source's tables, by their one-part names")
            table.meta[_SOURCE_TABLE] = True
    if any(id(t) not in placed for t in q.find_all(exp.Table)):
        raise ConfigError("query: a table in an unsupported position; write the query as "
                          "SELECTs over the source's tables and CTEs")
    return q


def expr_definition(text: str) -> exp.Expr:
    """A column's ``expr``, parsed: one scalar expression over the source row.

    >>> expr_definition("replace(car_plate, '-', '')").sql()
    "REPLACE(car_plate, '-', '')"
    >>> expr_definition("(SELECT max(x) FROM other)")
    Traceback (most recent call last):
    ...
    zhongshu.errors.ConfigError: expr: an expression over the source row reads no table or \
subquery

    Raises:
        ConfigError: not one expression; a statement, subquery or table; an aggregate or
            window function; a column qualified by a table.
    """
    e = _one(text, "expr: the expression")
    if isinstance(e, exp.Query) or any(isinstance(n, (exp.Query, exp.Table))
                                       for n in e.walk()):
        raise ConfigError("expr: an expression over the source row reads no table or "
                          "subquery")
    if any(isinstance(n, (exp.AggFunc, exp.Window)) for n in e.walk()):
        raise ConfigError("expr: an expression over the source row is no aggregate or window")
    for col in e.find_all(exp.Column):
        if col.args.get("table") is not None:
            raise ConfigError(f"expr: `{col.sql('duckdb')}`: name the source table's columns "
                              "unqualified")
    return e


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
        self._adopted: set[str] = set()
        for mf in city.members.values():
            self._add_member(mf)

    def adopt_checks(self, old: Catalog) -> int:
        """Take ``old``'s last check of each dataset declared, and sourced, exactly as there
        (a reload: those were checked against the same sources when ``old`` was built), so
        that the next full :meth:`check` checks only the others; how many were taken."""
        self._adopted = set()
        for name, d in self.datasets.items():
            o = old.datasets.get(name)
            if o is not None and o.status != "source_down" and o.config == d.config \
                    and o.source.config == d.source.config:
                d.status, d.reason, d.observed = o.status, o.reason, dict(o.observed)
                self._adopted.add(name)
        return len(self._adopted)

    def _add_member(self, mf: MemberFile) -> None:
        m = mf.member
        self.members[m.name] = Member(m.name, m.kind, m.title, list(m.roles))
        self.store.upsert_member(m.name, m.kind, m.title, list(m.roles))
        for sc in mf.sources:
            self.sources[sc.name] = open_source(sc, self.city.root, m.name)
        for dc in mf.datasets:
            ds = Dataset(dc.name, m.name, dc, self.sources[dc.source])
            self._check_definition(m.name, ds)
            self.datasets[dc.name] = ds

    def _check_definition(self, owner: str, ds: Dataset) -> None:
        """Parse and check the dataset's ``query =`` and columns' ``expr`` now, so that a bad
        one stops the hub at start with the member file and line."""
        path = self.city.member_files.get(owner)
        text = path.read_text(encoding="utf-8") if path is not None else ""
        try:
            ds.query_definition()
        except ConfigError as e:
            raise ConfigError(f"dataset `{ds.name}`: {e.message}", path=str(path or ""),
                              line=dataset_line(text, ds.name, "query")) from None
        for col in ds.columns:
            try:
                ds.column_expr(col)
            except ConfigError as e:
                raise ConfigError(f"dataset `{ds.name}` column `{col.name}`: {e.message}",
                                  path=str(path or ""),
                                  line=column_line(text, ds.name, col.name)) from None

    def dataset(self, name: str) -> Dataset | None:
        """The dataset called ``name`` (case-insensitive), or None."""
        return self.datasets.get(name.lower())

    # --- remote datasets (zhongshu.catalog.remote) ----------------------------------------

    def set_remote(self, peer: str, configs: list[DatasetConfig]) -> list[str]:
        """Make ``configs`` the remote datasets of ``peer`` (a member of kind ``hub``),
        replacing those it offered before; returns the names refused (one that is a local
        dataset's, or another peer's, is never taken: a peer cannot shadow them).

        The dataset map is replaced as a whole, so readers see the old or the new one."""
        from zhongshu.catalog.remote import RemoteSource

        member = self.members.get(peer)
        if member is None or member.kind != "hub":
            raise ValueError(f"`{peer}` is no member of kind hub")
        new = {n: d for n, d in self.datasets.items()
               if not (isinstance(d.source, RemoteSource) and d.source.name == peer)}
        refused = []
        source = RemoteSource(peer)
        for dc in configs:
            if dc.name in new or dc.source != peer:
                refused.append(dc.name)
                continue
            new[dc.name] = Dataset(dc.name, peer, dc, source)
        self.datasets = new
        return refused

    def set_union(self, name: str, owner: str, config: DatasetConfig | None,
                  parts: dict[str, str]) -> None:
        """Make ``config`` the union dataset ``name`` of ``owner`` over ``parts`` (remote
        dataset → its value of the peer column), or remove it (None)."""
        from zhongshu.catalog.remote import UnionSource

        new = dict(self.datasets)
        old = new.get(name)
        if old is not None and not isinstance(old.source, UnionSource):
            raise ValueError(f"`{name}` is a dataset of this hub, not a union")
        new.pop(name, None)
        if config is not None:
            new[name] = Dataset(name, owner, config, UnionSource(name, parts))
        self.datasets = new

    def is_remote(self, dataset: Dataset) -> bool:
        """Whether ``dataset`` is a peer hub's (fetched through the federation)."""
        from zhongshu.catalog.remote import RemoteSource

        return isinstance(dataset.source, RemoteSource)

    # --- schema drift ---------------------------------------------------------------------

    def check(self, only_source: str | None = None) -> dict[str, Dataset]:
        """Compare every dataset's declared columns with what its source holds now.

        A dataset whose source has lost a column, or retyped one beyond its type family, is
        marked ``drift`` and will not be served; one whose source is down is marked
        ``source_down``. Results are stored in the metadata store. Datasets whose check was
        adopted (:meth:`adopt_checks`) are not checked again by the next full check.
        """
        by_source: dict[str, list[Dataset]] = {}
        skip, self._adopted = (self._adopted if only_source is None else set()), set()
        for d in self.datasets.values():
            if self.is_remote(d):
                continue  # checked by its own hub; its catalog's freshness is the federation's
            if (only_source is None or d.source.name == only_source) and d.name not in skip:
                by_source.setdefault(d.source.name, []).append(d)
        for source_name, datasets in by_source.items():
            source = self.sources[source_name]
            con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                         "autoload_known_extensions": False})
            con.execute("SET enable_progress_bar = false")  # not on the hub's console
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
        """Mark ``d`` ``ok``; ``drift`` when its source lost or retyped a column that was
        read from it before; ``invalid`` when its declaration names a table or column the
        source never had (the owner's configuration mistake, with the member file and line)."""
        observed: dict[str, str] = {}
        seen = self.store.dataset_seen(d.name)
        drift: list[str] = []
        failures: dict[str, str] = {}
        for col in d.columns:
            sql = d.relation(native=False, columns=[col.name], typed=False).sql("duckdb")
            try:
                observed[col.name] = con.execute(f"DESCRIBE {sql}").fetchall()[0][1]
            except duckdb.Error as e:
                failures[col.name] = d.source.redact(str(e).splitlines()[0])
                continue
            if not compatible(col.type, observed[col.name]):
                holds = "now holds" if col.name in seen else "holds"
                problem = (f"column `{col.name}` is declared {col.type} but the source "
                           f"{holds} {observed[col.name]}")
                if col.name in seen:
                    drift.append(problem)
                else:
                    self._mark(d, "invalid", self._where(d, col.name) + problem + "; declare "
                               f"the type the source has ({observed[col.name]})", observed)
                    return
        lost = {c: m for c, m in failures.items() if c in seen}
        never = {c: m for c, m in failures.items() if c not in seen}
        if never and not observed and len(set(never.values())) == 1:
            # not one column reads, all for one reason: the table (or query) itself
            self._mark(d, "invalid", self._where(d, None) + f"source `{d.source.name}` "
                       f"cannot read it ({next(iter(never.values()))})", observed)
            return
        if never:
            name, msg = next(iter(never.items()))
            others = f" (and {len(never) - 1} more column(s))" if len(never) > 1 else ""
            self._mark(d, "invalid", self._where(d, name) + f"column `{name}` cannot be read "
                       f"from source `{d.source.name}`{others}: {msg}", observed)
            return
        drift += [f"column `{c}` cannot be read from source `{d.source.name}` any more "
                  f"({m})" for c, m in lost.items()]
        if drift:
            self._mark(d, "drift", "; ".join(drift) + f". The source changed since it was "
                       f"declared: update the dataset in the member file of `{d.owner}` or ask "
                       "the department what changed.", observed)
        else:
            self._mark(d, "ok", "", observed)

    def _where(self, d: Dataset, column: str | None) -> str:
        """``FILE:LINE: dataset `NAME`[ column `C`]: `` — where an owner fixes ``d``."""
        path = self.city.member_files.get(d.owner)
        text = path.read_text(encoding="utf-8") if path is not None else ""
        line = column_line(text, d.name, column) if column else (
            dataset_line(text, d.name, "table") or dataset_line(text, d.name, "query"))
        at = f"{path}:{line}: " if path and line else (f"{path}: " if path else "")
        return at + f"dataset `{d.name}`: "

    def _mark(self, d: Dataset, status: Status, reason: str, observed: dict[str, str]) -> None:
        d.status, d.reason, d.observed = status, reason, observed
        self.store.record_dataset(d.name, d.owner, d.source.name, d.listed, status, reason,
                                  observed)
