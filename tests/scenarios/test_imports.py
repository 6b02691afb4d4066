"""Scenarios and the cockpit use the hub only through the protocol: of the hub's own code
they import the client and the error hierarchy (scenarios also the traffic definitions, and
the cockpit the city's configuration, for its public geography), never the query, policy,
catalog, ledger or source internals."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "zhongshu"
ALLOWED = {"scenarios": ("zhongshu.client", "zhongshu.errors", "zhongshu.scenarios",
                         "zhongshu.traffic"),  # the traffic definitions: no hub state
           "cockpit": ("zhongshu.config", "zhongshu.errors", "zhongshu.cockpit")}


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_only_the_client_and_errors_of_the_hub(part: str) -> None:
    bad = []
    for path in sorted((PACKAGE / part).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name.startswith("zhongshu") and not name.startswith(ALLOWED[part]):
                    bad.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert not bad, bad
    assert list((PACKAGE / part).rglob("*.py"))
