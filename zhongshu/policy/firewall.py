"""The SQL firewall and rewriter: a pipeline of small rules over the sqlglot expression.

Each rule is ``rule(expression, ctx) -> expression`` (one module each under ``rules/``) and
either returns the (possibly rewritten) expression or raises a protocol error. ``govern``
parses the caller's text and runs ``RULES`` in order:

1. ``one_select``            exactly one statement, and it is a SELECT (or WITH … SELECT, UNION…)
2. ``bounded_nesting``       at most 32 nested queries (so no later stage runs out of stack)
3. ``no_forbidden_nodes``    no DDL/DML/commands/INTO/locking/recursion/foreign parameters inside
4. ``allowed_functions``     scalar, aggregate and window functions from an allow-list only
5. ``resolve_datasets``      every table reference is a dataset (or a CTE); nothing else
6. ``authorize_columns``     every dataset granted for the purpose; every column used readable
7. ``subject_lookups``       the identifiers of people the query names, and how it narrows
                             datasets with identifying columns (recorded, never rewritten)
8. ``pseudonym_lookups``     equality with a literal on a pseudonymised column compares
                             pseudonyms; ranges and patterns on it are refused
9. ``aggregate_only``        aggregate-only columns only inside count/sum/avg/… over ≥ k rows
10. ``governed_views``        each dataset reference becomes a subquery over the raw dataset
                             relation exposing the columns read, masked, within the row scope

The result is a ``Governed``: the rewritten expression, whose only relations are raw marker
tables (``relations.raw_table``) that the query layer swaps for the source relation of the
path it chooses (DuckDB or the source's own engine), and what it reads under which grants.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from zhongshu.catalog.catalog import Catalog
from zhongshu.errors import QueryInvalid, SqlSyntax, ZhongshuError
from zhongshu.policy.context import Context, DatasetRef, Rule
from zhongshu.policy.functions import ALLOWED_FUNCTIONS, function_name
from zhongshu.policy.governed import Governed
from zhongshu.policy.grants import Grants
from zhongshu.policy.identity import Caller
from zhongshu.policy.parse import parse
from zhongshu.policy.relations import RAW_META, RAW_PREFIX, marked_dataset, raw_table
from zhongshu.policy.rules.aggregate_only import aggregate_only
from zhongshu.policy.rules.allowed_functions import allowed_functions
from zhongshu.policy.rules.authorize_columns import authorize_columns
from zhongshu.policy.rules.bounded_nesting import TOO_DEEP, bounded_nesting
from zhongshu.policy.rules.governed_views import governed_views
from zhongshu.policy.rules.no_forbidden_nodes import no_forbidden_nodes
from zhongshu.policy.rules.one_select import one_select
from zhongshu.policy.rules.pseudonym_lookups import pseudonym_lookups
from zhongshu.policy.rules.resolve_datasets import resolve_datasets
from zhongshu.policy.rules.subject_lookups import subject_lookups

log = logging.getLogger("zhongshu.policy")

__all__ = ["ALLOWED_FUNCTIONS", "RAW_META", "RAW_PREFIX", "RULES", "TOO_DEEP", "Context",
           "DatasetRef", "Governed", "Rule", "function_name", "govern", "marked_dataset",
           "parse", "raw_table"]

RULES: tuple[Rule, ...] = (one_select, bounded_nesting, no_forbidden_nodes, allowed_functions,
                           resolve_datasets, authorize_columns, subject_lookups,
                           pseudonym_lookups, aggregate_only,
                           governed_views)


def govern(sql: str, *, caller: Caller, purpose: str, catalog: Catalog, grants: Grants,
           parameters: Iterable[str] = (), rules: tuple[Rule, ...] = RULES) -> Governed:
    """Parse ``sql`` and run ``rules`` over it for ``caller`` and ``purpose``.

    Args:
        parameters: the placeholder names (``:name``) the text may hold — those the query
            layer lifted out of the caller's literals; any other placeholder is refused.

    Returns:
        The governed query and what it reads (see ``Governed``).

    Raises:
        SqlSyntax: the text does not parse, or is nested too deeply (for the parser, or
            deeper than ``bounded_nesting`` allows): sqlglot walks trees recursively, and
            this is the one place a query is refused for its depth — a governed query is
            shallow enough for every later stage to render.
        ZhongshuError: the refusal of the first rule that refuses (``statement_not_allowed``,
            ``function_not_allowed``, ``dataset_not_found``, ``column_not_granted``…).
    """
    ctx = Context(caller=caller, purpose=purpose, catalog=catalog, grants=grants,
                  parameters=frozenset(parameters))
    try:
        e = parse(sql)
        for rule in rules:
            e = rule(e, ctx)
    except RecursionError:
        raise SqlSyntax(TOO_DEEP) from None
    except ZhongshuError:
        raise
    except Exception as err:
        # sqlglot's optimizer meeting a shape it does not handle (an assertion, say, for
        # `ORDER BY 1` over a `*` it cannot expand): what the hub cannot analyse it refuses
        log.warning("the firewall could not analyse a query (%s: %s); refused",
                    type(err).__name__, err)
        raise QueryInvalid("the hub cannot analyse this query; name the columns instead of "
                           "`*` and `ORDER BY` them by name, or simplify it") from None
    return Governed.of(e, ctx)
