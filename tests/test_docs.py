"""The docs stay true: every setting is documented, doctests run."""

from __future__ import annotations

import doctest
from pathlib import Path

import zhongshu.query.plan
from zhongshu.config import HubSettings, LedgerSettings, SourceConfig
from zhongshu.policy.firewall import ALLOWED_FUNCTIONS

ROOT = Path(__file__).resolve().parent.parent


def test_every_hub_setting_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    reference = (ROOT / "docs" / "configuration.md").read_text()
    for name in HubSettings.model_fields:
        assert f"`{name}`" in readme, name
        assert f"`{name}`" in reference, name
    for name, field in SourceConfig.model_fields.items():
        assert f"`{field.alias or name}`" in reference, name
    for name in LedgerSettings.model_fields:
        assert f"`{name}`" in reference, name
        assert f"`{name}`" in readme, name


def test_every_allowed_function_documented() -> None:
    text = (ROOT / "docs" / "query.md").read_text()
    for f in ALLOWED_FUNCTIONS:
        assert f"`{f}`" in text, f


def test_doctests() -> None:
    result = doctest.testmod(zhongshu.query.plan)
    assert result.attempted >= 1 and result.failed == 0
