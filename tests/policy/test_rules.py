"""Each firewall rule against its own data fixtures: ``tests/policy/rules/<rule>/*.toml``.

The rules run in order over the demo city's catalog and grants, without executing anything.
A case names the caller, the purpose and the SQL, and then either

* ``refused = "CODE"`` — the rule of the case's folder (not an earlier or a later one)
  refuses the query with this protocol error code; or
* properties of the ``Governed`` result, each optional — ``datasets`` (every dataset read,
  row scopes' included), ``columns_read``, ``row_scopes`` (the datasets whose rows a grant's
  row scope limits), ``calls`` (functions the governed query calls, at least these),
  ``hashed`` (literals of the caller's text that survive only inside a pseudonym),
  ``having_floor`` (the governed query keeps only groups of at least that many rows) and
  ``only_raw_relations`` (every relation read is a raw dataset marker or a CTE).

``parameters`` lists the placeholder names the query layer would pass; ``[access]`` changes
one dataset's masks for the case (the demo grants no ``aggregate_only`` column).
As sqlglot's optimizer fixtures do, cases assert what a rewrite means, never its text.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest
from sqlglot import exp

from zhongshu.catalog.catalog import Dataset
from zhongshu.config import Mask
from zhongshu.errors import ZhongshuError
from zhongshu.policy.firewall import RULES, Context, Governed, function_name, marked_dataset
from zhongshu.policy.grants import Access, Grants
from zhongshu.policy.identity import Caller
from zhongshu.policy.masking import PSEUDONYM_FN
from zhongshu.policy.parse import parse
from zhongshu.query.service import QueryService

FIXTURES = Path(__file__).parent / "rules"
FILES = sorted(FIXTURES.glob("*/*.toml"))
KEYS = {"caller", "purpose", "sql", "refused", "parameters", "access", "datasets",
        "columns_read", "row_scopes", "calls", "hashed", "having_floor", "only_raw_relations",
        "identifiers"}


class Masked:
    """The real grants, with one dataset's masks replaced (what the case's ``[access]`` says)."""

    def __init__(self, grants: Grants, dataset: str, masking: dict[str, Mask]) -> None:
        self.grants, self.dataset, self.masking = grants, dataset, masking

    def visible(self, caller: Caller, dataset: Dataset) -> bool:
        return self.grants.visible(caller, dataset)

    def decide(self, caller: Caller, dataset: Dataset, purpose: str) -> Access:
        access = self.grants.decide(caller, dataset, purpose)
        if dataset.name != self.dataset:
            return access
        return dataclasses.replace(access, masking={**access.masking, **self.masking})


def _run(service: QueryService, case: dict[str, Any]) -> tuple[Governed | None, str, Any]:
    """Run the rules in order: the result, and the rule that refused (with its error)."""
    grants: Any = service.grants
    if "access" in case:
        a = case["access"]
        grants = Masked(grants, a["dataset"], {c: Mask.model_validate(m)
                                               for c, m in a["masking"].items()})
    ctx = Context(caller=Caller(service.catalog.members[case["caller"]]),
                  purpose=case["purpose"], catalog=service.catalog, grants=grants,
                  parameters=frozenset(case.get("parameters", ())))
    e = parse(case["sql"])
    for rule in RULES:
        try:
            e = rule(e, ctx)
        except ZhongshuError as err:
            return None, rule.__name__, err
    return Governed.of(e, ctx), "", None


def _floors(e: exp.Expr) -> set[int]:
    return {int(g.expression.this) for h in e.find_all(exp.Having) for g in h.find_all(exp.GTE)
            if isinstance(g.this, exp.Count) and isinstance(g.this.this, exp.Star)}


def test_every_rule_has_fixtures() -> None:
    folders = {p.name for p in FIXTURES.iterdir() if p.is_dir()}
    assert folders == {r.__name__ for r in RULES}
    for name in folders:
        assert len(list((FIXTURES / name).glob("*.toml"))) >= 3, name


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.stem}" for p in FILES])
def test_rule(service: QueryService, path: Path) -> None:
    case = tomllib.loads(path.read_text(encoding="utf-8"))
    assert set(case) <= KEYS, set(case) - KEYS
    governed, refused_by, error = _run(service, case)
    if "refused" in case:
        assert (refused_by, error.code) == (path.parent.name, case["refused"]), error.message
        return
    assert governed is not None, (refused_by, error.code, error.message)
    e = governed.expression
    if "datasets" in case:
        assert sorted(governed.datasets) == sorted(case["datasets"])
    if "columns_read" in case:
        assert governed.columns_read == case["columns_read"]
    if "identifiers" in case:  # the people the query names (policy.subjects)
        assert governed.subjects.identifiers({}) == {tuple(i) for i in case["identifiers"]}
    if "row_scopes" in case:
        assert sorted(s["dataset"] for s in governed.row_scopes) == sorted(case["row_scopes"])
    if "calls" in case:
        called = {function_name(n) for n in e.walk()}
        assert set(case["calls"]) <= called, called
    for value in case.get("hashed", []):
        found = [lit for lit in e.find_all(exp.Literal) if lit.this == value]
        assert found, value
        for lit in found:
            call = lit.find_ancestor(exp.Anonymous)
            assert call is not None and function_name(call) == PSEUDONYM_FN, call
    if "having_floor" in case:
        assert _floors(e) == {case["having_floor"]}
    if case.get("only_raw_relations"):
        ctes = {str(c.alias).lower() for c in e.find_all(exp.CTE)}
        for table in e.find_all(exp.Table):
            assert marked_dataset(table) is not None or table.name.lower() in ctes, table
