"""A real hub process serving the scenarios, on the demo city's embedded files and on its
`--engines real` twin (PostgreSQL and MariaDB departments), one per test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import demo_hub
from zhongshu.demo.tokens import read_token


@pytest.fixture(scope="module", params=["embedded", "real"])
def hub(request: pytest.FixtureRequest) -> Iterator[tuple[str, Path]]:
    source = request.getfixturevalue("demo_dir" if request.param == "embedded" else "real_dir")
    with demo_hub(source) as served:
        yield served


def caller(root: Path, member: str) -> dict[str, str]:
    """The headers of a request by ``member`` of the demo city at ``root`` (every scenario
    route authenticates its caller and admits only those its member file declares)."""
    return {"Authorization": f"Bearer {read_token(root, member)}"}
