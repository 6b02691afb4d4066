"""Rule: every dataset is granted for the purpose, and every column the query reads is one
the grant lets the caller read."""

from __future__ import annotations

import re

from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.qualify import qualify

from zhongshu.errors import ColumnNotFound, ColumnNotGranted
from zhongshu.policy.context import Context, DatasetRef

_UNRESOLVED = re.compile(r"[Cc]olumn '([^']+)'|[Uu]nknown column: '?([A-Za-z0-9_]+)")


def authorize_columns(e: exp.Expr, ctx: Context) -> exp.Expr:
    """Decide each reference's access (``ref.access``), then resolve every column of ``e``
    (``*`` included) against the readable columns only, and record in ``ref.columns`` the
    columns each reference is read for.

    A query that reads no dataset is resolved too: a bare name (``SELECT user``) is an
    unknown column, never something the engine fills in.

    Returns ``e`` unchanged (the qualified copy is only read).

    Raises:
        DatasetNotFound, Forbidden, PurposeNotGranted: from ``Grants.decide``.
        ColumnNotGranted: a declared column the caller's grant does not cover.
        ColumnNotFound: a column no dataset of the query declares.
    """
    for ref in ctx.refs:
        ref.access = ctx.grants.decide(ctx.caller, ref.dataset, ctx.purpose)
    try:
        q = qualify(e.copy(), schema=_readable_schema(ctx), dialect="duckdb",
                    expand_stars=True, validate_qualify_columns=True,
                    quote_identifiers=False, identify=False)
    except OptimizeError as err:
        m = _UNRESOLVED.search(str(err))
        missing = next((g for g in m.groups() if g), "").lower() if m else ""
        for ref in ctx.refs:
            if missing and ref.dataset.column(missing):
                raise ColumnNotGranted(
                    f"column `{missing}` of `{ref.dataset.name}` is not granted to "
                    f"`{ctx.caller.name}` for purpose `{ctx.purpose}`") from None
        raise ColumnNotFound(f"{_column_message(str(err))}; `GET /v1/datasets/NAME` lists a "
                             "dataset's columns") from None
    # The same alias may name tables in different scopes (`… WHERE camera_id IN (SELECT
    # camera_id FROM traffic.checkpoints)`): a column counts for every reference under its
    # alias that has it — conservative, it can only ask for more columns, never fewer.
    by_alias: dict[str, list[DatasetRef]] = {}
    for r in ctx.refs:
        by_alias.setdefault(r.alias, []).append(r)
    for col in q.find_all(exp.Column):
        for ref in by_alias.get(col.table.lower(), []) if col.table else []:
            if ref.dataset.column(col.name):
                ref.columns.add(col.name.lower())
    return e


def _readable_schema(ctx: Context) -> dict[str, object]:
    """Each referenced dataset with the columns the caller may read of it, as ``qualify``
    takes a schema: namespace → name → column → type."""
    schema: dict[str, dict[str, dict[str, str]]] = {}
    for ref in ctx.refs:
        assert ref.access is not None
        ns, name = ref.dataset.name.split(".")
        schema.setdefault(ns, {})[name] = {c.name: c.type for c in ref.dataset.columns
                                           if c.name in ref.access.columns}
    return dict(schema)


def _column_message(msg: str) -> str:
    """sqlglot's resolution error, in the hub's words.

    >>> _column_message("Column 'nope' could not be resolved. Line 1")
    "unknown column: 'nope'. Line 1"
    """
    msg = msg.split("\n")[0].strip()
    if "could not be resolved" in msg or "Unknown column" in msg:
        return "unknown column: " + msg.replace("Column ", "").replace(" could not be resolved",
                                                                       "")
    return "cannot resolve the query's columns: " + msg
