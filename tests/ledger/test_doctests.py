"""Every ledger module's doctests run (and the pure ones have some)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import zhongshu.ledger

MODULES = sorted(m.name for m in pkgutil.iter_modules(zhongshu.ledger.__path__,
                                                        "zhongshu.ledger."))
PURE = {"zhongshu.ledger.canonical", "zhongshu.ledger.layout", "zhongshu.ledger.merkle",
        "zhongshu.ledger.entry", "zhongshu.ledger.receipt"}


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0
    if name in PURE:
        assert result.attempted > 0, f"{name} has no examples"
