"""The names the hub writes into a governed query, and why no caller's name can capture them.

A governed query names each dataset's rows as a table ``__raw__<namespace>__<name>`` marked
in its sqlglot meta; the query layer swaps each marker for the source relation of the path it
chooses. The mark, not the name, is what counts: no name a caller writes is ever taken for a
raw relation (and names starting with ``RAW_PREFIX`` are refused anyway).

Every other name the hub writes is out of the caller's reach too:

* the caller's CTEs are renamed ``__raw__cte<N>`` (``rename_ctes``), each reference keeping
  the caller's name as its alias: a one-part table name the engine meets is then one of the
  hub's, bound to the one CTE of that name or to nothing — never to a table of the engine's
  catalog, whatever the engine's own rules of CTE visibility;
* the columns of a governed view (masks, row scope) are qualified with the relations of the
  view itself (``bind_columns``, resolved with sqlglot's scopes), so none can bind to a
  relation of the caller's query;
* source relations are schema-qualified on every path (``Source.relation`` and
  ``NativeSQL.native_relation``), and no engine binds a qualified name to a CTE.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.scope import Scope, traverse_scope

from zhongshu.catalog.catalog import Dataset

RAW_PREFIX = "__raw__"
RAW_META = "zhongshu_raw"  # meta key of the marker tables the rewriter itself creates
CTE_META = "zhongshu_cte"  # meta key: the index of the caller's CTE a node defines or reads


def raw_table(dataset: Dataset) -> exp.Table:
    """The marker table that stands for ``dataset``'s raw rows.

    >>> from types import SimpleNamespace
    >>> t = raw_table(SimpleNamespace(name="traffic.passages"))
    >>> t.sql(), marked_dataset(t)
    ('__raw__traffic__passages', 'traffic.passages')
    """
    ns, name = dataset.name.split(".")
    table = exp.table_(f"{RAW_PREFIX}{ns}__{name}")
    table.meta[RAW_META] = dataset.name
    return table


def marked_dataset(node: exp.Expr) -> str | None:
    """The name of the dataset whose marker table ``node`` is, or None for any other node.

    >>> from sqlglot import parse_one
    >>> marked_dataset(parse_one("SELECT * FROM __raw__traffic__passages").find(exp.Table))
    """
    if not isinstance(node, exp.Table):
        return None
    name = node.meta.get(RAW_META)
    return name if isinstance(name, str) else None


def cte_name(index: int) -> str:
    """The hub's name for the caller's CTE number ``index`` (in the reserved namespace).

    >>> cte_name(3)
    '__raw__cte3'
    """
    return f"{RAW_PREFIX}cte{index}"


def rename_ctes(e: exp.Expr) -> exp.Expr:
    """Rename, in place, every CTE of ``e`` that ``resolve_datasets`` marked, and every table
    reference it resolved to one, to the hub's name for that CTE (``cte_name``).

    A reference keeps the caller's name as its alias (``FROM c`` → ``FROM __raw__cte0 AS c``),
    so the caller's column qualifiers and output names are unchanged. Each CTE gets a name of
    its own: an engine binds a renamed reference to that very CTE, or (if its scoping differed
    from the hub's) fails — it cannot reach a catalog table, as no caller's name is left.

    >>> import sqlglot
    >>> e = sqlglot.parse_one("WITH c AS (SELECT 1 AS x) SELECT c.x FROM c")
    >>> e.find(exp.CTE).meta[CTE_META] = e.find(exp.Table).meta[CTE_META] = 0
    >>> rename_ctes(e).sql()
    'WITH __raw__cte0 AS (SELECT 1 AS x) SELECT c.x FROM __raw__cte0 AS c'
    """
    for node in list(e.find_all(exp.CTE, exp.Table)):
        index = node.meta.get(CTE_META)
        if not isinstance(index, int):
            continue
        name = exp.to_identifier(cte_name(index))
        if isinstance(node, exp.CTE):
            node.args["alias"].set("this", name)
            continue
        if node.args.get("alias") is None:
            node.set("alias", exp.TableAlias(this=node.this.copy()))
        node.set("this", name)
    return e


class UnboundColumn(ValueError):
    """A column of a governed view that no relation of the view provides."""


def bind_columns(view: exp.Query, dataset: Callable[[str], Dataset | None]) -> exp.Query:
    """Qualify every column of a governed view (built by the hub: masks over raw marker
    tables, within a row scope) with the relation of the view that provides it, in place.

    Each column is resolved as SQL binds it — in its own query first, then outward (a
    correlated reference in a row scope is qualified with the outer relation it reads) — but
    only within the view, over the marker tables' declared columns and the view's own derived
    tables. Once embedded in the caller's query, a qualified column binds to the nearest
    relation of that name — one of the view's own (a marker table's name is reserved, an
    alias the scope's author gave is defined inside the view): no relation the caller
    defines can stand in for it.

    Args:
        dataset: the dataset of a marker table, by name (for its declared columns).

    Raises:
        UnboundColumn: a column no relation of the view provides, or more than one in the
            same query (a grant's row scope that reads an undeclared column would otherwise
            bind to whatever the caller names so).

    >>> import sqlglot
    >>> from types import SimpleNamespace as N
    >>> ds = N(name="a.t", columns=[N(name="x"), N(name="y")])
    >>> v = sqlglot.parse_one("SELECT x FROM t WHERE y IN (SELECT s.x FROM t AS s WHERE y > 1)")
    >>> for m in v.find_all(exp.Table):
    ...     m.meta[RAW_META] = "a.t"
    >>> bind_columns(v, {"a.t": ds}.get).sql()
    'SELECT t.x FROM t WHERE t.y IN (SELECT s.x FROM t AS s WHERE s.y > 1)'
    """
    try:
        scopes = traverse_scope(view)
    except OptimizeError:
        raise UnboundColumn("a governed view's structure cannot be resolved") from None
    for scope in scopes:
        for col in scope.columns:
            name = _provider(scope, col, dataset)
            if name is None:
                raise UnboundColumn(f"column `{col.name}` of a governed view is not bound")
            col.set("table", exp.to_identifier(name))
    if any(not col.table for col in view.find_all(exp.Column)):  # one no scope listed
        raise UnboundColumn("a column of a governed view is not bound")
    return view


def _provider(scope: Scope | None, col: exp.Column,
              dataset: Callable[[str], Dataset | None]) -> str | None:
    """The name of the relation ``col`` reads, nearest scope first; None if none or several
    in one scope provide it."""
    want, qualifier = col.name.lower(), col.table.lower()
    while scope is not None:
        found = [name for name, source in scope.selected_sources.items()
                 if (not qualifier or name.lower() == qualifier)
                 and want in _outputs(source[1], dataset)]
        if len(found) == 1:
            return found[0]
        if found or (qualifier and qualifier in {n.lower() for n in scope.sources}):
            return None  # ambiguous, or the named relation lacks the column
        scope = scope.parent
    return None


def _outputs(source: exp.Table | Scope, dataset: Callable[[str], Dataset | None]
             ) -> set[str]:
    """The columns a source of a view's scope provides: a marker table's declared columns,
    a derived table's select list; nothing for anything else."""
    if isinstance(source, Scope):
        query = source.expression
        return {n.lower() for n in query.named_selects} if isinstance(query, exp.Query) \
            else set()
    name = marked_dataset(source)
    ds = dataset(name) if name is not None else None
    return {c.name for c in ds.columns} if ds is not None else set()
