"""Raw relations: the marker tables the rewriter puts where a dataset's rows are read.

A governed query names each dataset's rows as a table ``__raw__<namespace>__<name>`` marked
in its sqlglot meta; the query layer swaps each marker for the source relation of the path it
chooses. The mark, not the name, is what counts: no name a caller writes is ever taken for a
raw relation (and names starting with ``RAW_PREFIX`` are refused anyway).
"""

from __future__ import annotations

from sqlglot import exp

from zhongshu.catalog.catalog import Dataset

RAW_PREFIX = "__raw__"
RAW_META = "zhongshu_raw"  # meta key of the marker tables the rewriter itself creates


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
