"""Which of the city's areas a grant's row scope can let rows through from, read from the
scope's SQL (never by running it): what the cockpit asks to decide which pages a viewer may
open (``GET /v1/grants``, each grant's ``areas``).

A row scope is read *by area* where it compares a column with area names or codes — its
dataset's ``area_column`` with any value, or any column with a name or code the city declares
in ``city.toml`` (codes read as the area's name) — directly (``district = 'xihu'``,
``area_code IN ('330106', '330108')``) or through another dataset
(``camera_id IN (SELECT camera_id FROM traffic.checkpoints WHERE district = 'xihu')``). ``AND``
keeps the narrower side, ``OR`` joins both. Anything else says nothing of areas: a grant
without a row scope, or whose scope is not read by area, answers ``None`` — rows of any area
may pass (the hub still applies the scope to every row; this only says where to look).

>>> ds = {"parks.trees": "district", "traffic.checkpoints": "district", "lots": "area_code"}
>>> areas = AreaReader(lambda name: ds.get(name), {"330106": "xihu"}, {"xihu", "binjiang"})
>>> areas.of("district = 'xihu'", "parks.trees")
['xihu']
>>> areas.of("area_code IN ('330106', '330108')", "lots")
['330108', 'xihu']
>>> areas.of("camera_id IN (SELECT camera_id FROM traffic.checkpoints WHERE district = "
...          "'xihu')", "traffic.passages")
['xihu']
>>> areas.of("district = 'xihu' OR species = 'oak'", "parks.trees") is None
True
>>> areas.of("(district = 'xihu' OR district = 'binjiang') AND species = 'oak'", "parks.trees")
['binjiang', 'xihu']
>>> areas.of(None, "parks.trees") is None
True
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

import sqlglot
from sqlglot import exp

from zhongshu.catalog.catalog import Catalog
from zhongshu.config import District, Street

Areas = frozenset[str] | None
"""The areas rows may come from; None: any."""


class AreaReader:
    """Reads row scopes by area, for one city.

    Args:
        area_column: a dataset's ``area_column`` by its name (None: it has none or is unknown).
        codes: area code → area name, of every district and street the city declares.
        names: every declared area name.
    """

    def __init__(self, area_column: Callable[[str], str | None], codes: Mapping[str, str],
                 names: Collection[str]) -> None:
        self.area_column = area_column
        self.codes = dict(codes)
        self.names = frozenset(names)

    @classmethod
    def of_catalog(cls, catalog: Catalog) -> AreaReader:
        """The reader for a catalog's city and datasets."""
        city = catalog.city
        areas: list[District | Street] = [*city.districts, *city.streets]

        def area_column(name: str) -> str | None:
            ds = catalog.dataset(name)
            return ds.config.area_column if ds is not None else None

        return cls(area_column, {a.code: a.name for a in areas if a.code},
                   {a.name for a in areas})

    def of(self, row_scope: str | None, dataset: str) -> list[str] | None:
        """The areas rows of ``dataset`` under ``row_scope`` may come from, sorted; None: any
        (no scope, or one not read by area)."""
        if not row_scope:
            return None
        try:
            tree = sqlglot.parse_one(row_scope, read="duckdb")
        except (sqlglot.ParseError, sqlglot.errors.TokenError, RecursionError):
            return None
        found = self._areas(tree, dataset)
        return None if found is None else sorted(found)

    def _areas(self, node: exp.Expr, dataset: str) -> Areas:
        if isinstance(node, exp.Paren):
            return self._areas(node.this, dataset)
        if isinstance(node, exp.And):
            left, right = self._areas(node.left, dataset), self._areas(node.right, dataset)
            if left is None or right is None:
                return right if left is None else left
            # both bound the rows: either alone is a sound answer, the smaller the better
            return left if len(left) <= len(right) else right
        if isinstance(node, exp.Or):
            left, right = self._areas(node.left, dataset), self._areas(node.right, dataset)
            return None if left is None or right is None else left | right
        if isinstance(node, exp.EQ):
            column, value = _column_and_value(node.left, node.right) or \
                _column_and_value(node.right, node.left) or (None, None)
            return self._values(column, [value] if value is not None else [], dataset)
        if isinstance(node, exp.In) and isinstance(node.this, exp.Column):
            query = node.args.get("query")
            if query is not None:
                return self._through(query.this if isinstance(query, exp.Subquery)
                                     else query)
            values = [v.name for v in node.expressions if isinstance(v, exp.Literal)
                      and v.is_string]
            if len(values) != len(node.expressions):
                return None
            return self._values(node.this, values, dataset)
        return None

    def _values(self, column: exp.Column | None, values: list[str], dataset: str) -> Areas:
        if column is None or not values:
            return None
        named = [self.codes.get(v, v) for v in values]
        by_area = column.name == self.area_column(dataset) or all(
            v in self.names for v in named)
        return frozenset(named) if by_area else None

    def _through(self, query: exp.Expr) -> Areas:
        """The areas of a subquery ``SELECT … FROM <dataset> WHERE <scope>``."""
        if not isinstance(query, exp.Select):
            return None
        tables = list(query.find_all(exp.Table))
        where = query.args.get("where")
        if len(tables) != 1 or where is None or not tables[0].db:
            return None
        return self._areas(where.this, f"{tables[0].db}.{tables[0].name}".lower())


def _column_and_value(a: exp.Expr, b: exp.Expr
                      ) -> tuple[exp.Column, str] | None:
    if isinstance(a, exp.Column) and isinstance(b, exp.Literal) and b.is_string:
        return a, b.name
    return None
