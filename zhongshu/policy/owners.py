"""Owners' SQL: every piece of SQL that comes from configuration or from the grants API is
checked like a query — by the firewall (``firewall.govern`` and its rules), as its author,
reading only what its author may read.

============================  ==============  ============================================
piece                         author          checked as
============================  ==============  ============================================
a grant's ``row_scope``       the grant's     the query ``SELECT 1 FROM <dataset> WHERE
(member file or the grants    owner           <scope>``, governed as the owner for each of
API)                                          the grant's purposes (``rules/row_scope.py``);
                                              at run time it is governed again, for the
                                              consumer's purpose, and only that governed
                                              form is ever applied
a dataset's ``query =``       the dataset's   one query whose tables are its own source's
                              owner           (one-part names, in their own scope) or CTEs
                                              visible there (``catalog.query_definition``);
                                              the firewall's text rules: no statement,
                                              recursion or parameter, allow-listed functions
a column's ``expr``           the dataset's   one scalar expression over the source row: no
                              owner           subquery, table, aggregate, window or
                                              qualified column (``catalog.expr_definition``);
                                              the same text rules
a cockpit panel's ``sql`` and the panel's     every rule of the firewall, as a viewer who
``trigger`` (``panels.toml``, viewer          may read the panel's declared ``datasets`` —
a city's ``cockpit.toml``,                    all their columns, and nothing else; a page
scenarios' panels)                            runs it as its real viewer, under the viewer's
                                              own grants
============================  ==============  ============================================

A dataset's definition reads its own source only, so which rows and columns it offers is the
owner's business; but it runs on the hub's engine (and on the source under the hub's
credentials), so it calls the same allow-listed functions as any query — nothing that reads
files, settings or the engine's catalog.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Literal

from sqlglot import exp

from zhongshu.catalog.catalog import Catalog, Dataset, Member, expr_definition, query_definition
from zhongshu.config.checks import column_line, dataset_line
from zhongshu.errors import ConfigError, DatasetNotFound, ZhongshuError
from zhongshu.policy.context import Context
from zhongshu.policy.firewall import govern
from zhongshu.policy.grants import Access, Grants
from zhongshu.policy.identity import Caller
from zhongshu.policy.rules.allowed_functions import allowed_functions
from zhongshu.policy.rules.bounded_nesting import bounded_nesting
from zhongshu.policy.rules.no_forbidden_nodes import no_forbidden_nodes
from zhongshu.policy.rules.row_scope import govern_scope

_TEXT_RULES = (bounded_nesting, no_forbidden_nodes, allowed_functions)
_checked: weakref.WeakSet[Catalog] = weakref.WeakSet()
PANEL_PURPOSE = "cockpit"  # the purpose a panel is checked for (its viewer's is decided later)


def check_row_scope(text: str, *, owner: str, dataset: Dataset, purposes: Sequence[str],
                    catalog: Catalog, grants: Grants) -> None:
    """Check a grant's row scope as its owner's query, for each of the grant's purposes.

    Raises:
        ZhongshuError: the firewall's refusal for the owner, for the first purpose refused
            (see ``rules.row_scope.govern_scope``).
    """
    caller = Caller(catalog.members[owner])
    for purpose in purposes:
        govern_scope(text, owner=caller, dataset=dataset, purpose=purpose, catalog=catalog,
                     grants=grants)


def check_definition_sql(kind: Literal["query", "expr"], text: str, *, owner: str,
                         catalog: Catalog, grants: Grants) -> None:
    """Check one dataset ``query =`` or column ``expr`` of ``owner`` as the catalog and the
    firewall's text rules do when a city is loaded.

    Raises:
        ConfigError: what the catalog refuses (what it reads, what it is).
        ZhongshuError: the firewall's refusal (``function_not_allowed``…).
    """
    e: exp.Expr = query_definition(text) if kind == "query" else expr_definition(text)
    ctx = Context(caller=Caller(catalog.members[owner]), purpose="", catalog=catalog,
                  grants=grants)
    for rule in _TEXT_RULES:
        rule(e, ctx)


def definition_problems(catalog: Catalog, grants: Grants) -> list[ConfigError]:
    """What is wrong with the datasets' definitions under the firewall's text rules (the
    catalog already placed their tables), each naming the member file and line."""
    problems: list[ConfigError] = []
    for ds in catalog.datasets.values():
        member = catalog.members.get(ds.owner)
        if member is None:
            continue
        ctx = Context(caller=Caller(member), purpose="", catalog=catalog, grants=grants)
        pieces: list[tuple[str | None, exp.Expr]] = []
        query = ds.query_definition()
        if query is not None:
            pieces.append((None, query))
        pieces += [(c.name, ds.column_expr(c)) for c in ds.columns if c.expr]
        for column, e in pieces:
            try:
                for rule in _TEXT_RULES:
                    rule(e, ctx)
            except ZhongshuError as err:
                path = catalog.city.member_files.get(ds.owner)
                text = path.read_text(encoding="utf-8") if path is not None else ""
                if column is None:
                    where, line = "query", dataset_line(text, ds.name, "query")
                else:
                    where, line = f"column `{column}`: expr", column_line(text, ds.name, column)
                problems.append(ConfigError(f"dataset `{ds.name}` {where}: {err.message}",
                                            path=str(path or ""), line=line,
                                            dataset=ds.name))
    return problems


def check_definitions(catalog: Catalog, grants: Grants) -> None:
    """Refuse a city whose dataset definitions fail the firewall's text rules (checked once
    per catalog: definitions are configuration, they do not change while a hub runs).

    Raises:
        ConfigError: the first problem, naming the member file and line.
    """
    if catalog in _checked:
        return
    problems = definition_problems(catalog, grants)
    if problems:
        raise problems[0]
    _checked.add(catalog)


class _Declared(Grants):
    """A panel's viewer's rights as the check sees them: every column of the datasets the
    panel declares, unmasked and unscoped, and nothing else."""

    def __init__(self, catalog: Catalog, datasets: Sequence[str]) -> None:
        # no grants to load: the rights are the panel's declaration (super() is not wanted)
        self.catalog = catalog
        self.declared = frozenset(d.lower() for d in datasets)

    def visible(self, caller: Caller, dataset: Dataset) -> bool:
        return True

    def decide(self, caller: Caller, dataset: Dataset, purpose: str) -> Access:
        if dataset.name not in self.declared:
            raise DatasetNotFound(f"the panel reads `{dataset.name}`, which it does not "
                                  "declare in `datasets` (its viewers are chosen by them)")
        return Access(dataset, None, tuple(c.name for c in dataset.columns), {}, None)


def panel_checker(catalog: Catalog) -> Callable[[str, Sequence[str]], None]:
    """A check of one panel's SQL (``sql`` or ``trigger``, bound to a page) that reads
    ``datasets``, for ``zhongshu.cockpit.panels.load_panels``.

    A panel that declares a dataset this city does not have is never shown here, and is not
    checked against its catalog.

    The check raises the firewall's refusal (``function_not_allowed``, ``dataset_not_found``
    for a dataset the panel does not declare, ``column_not_found``…).
    """
    viewer = Caller(Member("panel viewer", "cockpit", "a viewer of a cockpit panel", []))

    def check(sql: str, datasets: Sequence[str]) -> None:
        if any(catalog.dataset(d) is None for d in datasets):
            return
        govern(sql, caller=viewer, purpose=PANEL_PURPOSE, catalog=catalog,
               grants=_Declared(catalog, datasets))

    return check
