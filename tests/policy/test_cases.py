"""The data-driven firewall suite: one case per file under ``tests/policy/cases/<category>/``.

A case names the caller, the purpose, the SQL, and either ``expect`` (the protocol error codes
it may answer, ``ok`` for an answer) or a ``property`` the answer must have:

* ``no_clear_identifiers`` — answered, and no value anywhere looks like a plate or an id number;
* ``only_xihu`` — answered with at least one row (exactly ``rows`` rows when the case
  gives ``rows``: an escape that finds nothing in the scope), and every ``district``
  value is ``xihu`` — an empty answer where the scope has rows would hide a refusal;
* ``max_rows`` — answered within the row cap (truncated if need be), or refused for time;
* ``clean_error`` — refused, and the message echoes no data, path or source internals.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from zhongshu.errors import ZhongshuError
from zhongshu.policy.identity import Caller
from zhongshu.query.service import QueryService

CASES = Path(__file__).parent / "cases"
FILES = sorted(CASES.glob("*/*.toml"))
PLATE = re.compile(r"浙[A-Z][-· ]?[0-9A-Z]{5}")
ID_NUMBER = re.compile(r"\b\d{17}[\dX]\b")
LEAKS = ("src_", "__raw__", "cam-", "浙A", "/tmp", "/work", "zs_", "sqlite", "hub.db", "SELECT")


def _values(rows: list[dict[str, Any]]) -> list[str]:
    return [str(v) for r in rows for v in r.values() if v is not None]


def test_every_category_has_ten_cases() -> None:
    categories = {p.name for p in CASES.iterdir() if p.is_dir()}
    assert len(categories) == 16
    for cat in categories:
        assert len(list((CASES / cat).glob("*.toml"))) >= 10, cat


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.stem}" for p in FILES])
def test_case(service: QueryService, path: Path) -> None:
    case = tomllib.loads(path.read_text(encoding="utf-8"))
    caller = Caller(service.catalog.members[case["caller"]])
    try:
        result = service.run(caller, case["sql"], case["purpose"])
        outcome, error = "ok", None
    except ZhongshuError as e:
        outcome, error = e.code, e
    if "expect" in case:
        assert outcome in case["expect"], (outcome, error and error.message)
        return
    prop = case["property"]
    if prop == "clean_error":
        assert error is not None, "expected a refusal"
        assert error.code != "internal"
        for leak in LEAKS:
            assert leak not in error.message, (leak, error.message)
        return
    if prop == "max_rows" and outcome == "query_timeout":
        return
    assert error is None, (outcome, error and error.message)
    rows = result.table.to_pylist()
    if prop == "no_clear_identifiers":
        for v in _values(rows):
            assert not PLATE.search(v) and not ID_NUMBER.search(v), v
    elif prop == "only_xihu":
        if "rows" in case:
            assert len(rows) == case["rows"], rows
        else:
            assert rows, "an empty answer proves nothing about the row scope"
        assert {r["district"] for r in rows} <= {"xihu", None}
    elif prop == "max_rows":
        assert result.num_rows <= service.settings.row_cap
    else:
        raise AssertionError(f"unknown property {prop}")
