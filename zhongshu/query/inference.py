"""What a run may let a caller infer, enforced where plans run: the lookup budget is spent
before a plan touches a source, and an aggregate plan's engine errors say nothing.

Two small hooks for ``QueryService.execute`` (policy decides; this module only applies it at
run time, where the parameters are known):

* ``spend_lookups`` — the plan's lookup sites (``Governed.lookups``) paid from the budget of
  the caller the plan was governed for, and the run's parameters normalised;
* ``fixed_aggregate_errors`` — any refusal by the engine of a plan over an aggregate dataset
  becomes one fixed ``query_invalid``: the hub wrote that SQL, and no engine text (which may
  quote a value) reaches the caller.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from zhongshu.errors import QueryInvalid
from zhongshu.policy.lookups import LookupBudget
from zhongshu.query.plan import Plan, Template, parameter_index

AGGREGATE_FAILED = ("the aggregate could not be computed; check the dimension values you "
                    "filter by (their type), or ask again later")
F = TypeVar("F", bound=Callable[..., Any])


def spend_lookups(budget: LookupBudget, plan: Plan, template: Template,
                  on_behalf_of: str | None = None) -> Template:
    """The template to run ``plan`` with, once its lookups are paid by the member the plan
    was governed for (lookups inside a grant's row scope: by the scope's owner).

    Args:
        on_behalf_of: the caller a scenario member asks for (``Caller.on_behalf_of``, which
            the hub accepted and records): that caller's budget is spent too.

    Raises:
        LookupBudgetExceeded: see ``LookupBudget.spend``.
    """
    g = plan.governance
    if not g.lookups:
        return template
    spent = budget.spend(g.purpose, g.lookups, template.params, parameter_index,
                         also={g.caller: on_behalf_of} if on_behalf_of else None)
    return replace(template, params=spent.params)


def fixed_aggregate_errors(run: F) -> F:
    """Decorate ``execute(self, plan, template, …)``: a ``QueryInvalid`` raised while running
    an aggregate plan is answered with ``AGGREGATE_FAILED`` instead."""
    @functools.wraps(run)
    def wrapper(self: Any, plan: Plan, *args: Any, **kwargs: Any) -> Any:
        try:
            return run(self, plan, *args, **kwargs)
        except QueryInvalid:
            if not plan.governance.aggregate:
                raise
            fixed = QueryInvalid(AGGREGATE_FAILED)
            fixed.datasets = tuple(plan.columns_read)  # the refusal's entry names them
            raise fixed from None
    return wrapper  # type: ignore[return-value]
