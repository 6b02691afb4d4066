"""``[[callers]]`` in member files (``zhongshu.config.callers``): validated when the city
loads, and against the scenario's services when it is mounted — each error naming the file
and the line to change, like the rest of the configuration."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from zhongshu.config import load_city
from zhongshu.config.callers import check_services
from zhongshu.errors import ConfigError


def _city(tmp_path: Path, demo_dir: Path) -> Path:
    root = tmp_path / "city"
    shutil.copytree(demo_dir, root, ignore=shutil.ignore_patterns("state", "data"))
    return root


def _append(root: Path, member: str, text: str) -> tuple[Path, int]:
    """Append ``text`` to a member file; the path and the line ``text`` starts on."""
    path = root / "members" / f"{member}.toml"
    old = path.read_text(encoding="utf-8")
    path.write_text(old + text, encoding="utf-8")
    return path, len(old.splitlines()) + 1


@pytest.mark.parametrize(("member", "text", "offset", "words"), [
    ("health", '\n[[callers]]\nservices = ["report"]\nkinds = ["cockpit"]\n', 1,
     "only members of kind `scenario`"),
    ("app-medical", '\n[[callers]]\nservices = ["report"]\nmembers = ["nobody-here"]\n', 3,
     "no member `nobody-here`"),
    ("app-medical", '\n[[callers]]\nservices = ["report"]\n', 1, "admits nobody"),
    ("app-medical", '\n[[callers]]\nservices = ["report"]\nkinds = ["mayor"]\n', 3,
     "kinds"),
    ("app-medical", '\n[[callers]]\nservices = ["../x"]\nkinds = ["cockpit"]\n', 1,
     "not a path segment"),
    ("app-medical", '\n[[callers]]\nservices = ["report"]\nroles = ["x"]\nrate_limit = 0\n',
     4, "rate_limit"),
])
def test_bad_callers_name_file_and_line(tmp_path: Path, demo_dir: Path, member: str,
                                        text: str, offset: int, words: str) -> None:
    root = _city(tmp_path, demo_dir)
    path, start = _append(root, member, text)
    with pytest.raises(ConfigError) as e:
        load_city(root)
    assert e.value.path == str(path.resolve()) or e.value.path == str(path)
    assert words in str(e.value)
    assert e.value.line is not None and start <= e.value.line <= start + offset


def test_a_service_the_scenario_does_not_offer_is_named_at_mount(tmp_path: Path,
                                                                demo_dir: Path) -> None:
    root = _city(tmp_path, demo_dir)
    path, start = _append(root, "app-medical",
                          '\n[[callers]]\nservices = ["report", "refunds"]\nkinds = '
                          '["cockpit"]\n')
    city = load_city(root)
    check_services(city, "app-medical", {"eligibility", "report", "refunds"})
    with pytest.raises(ConfigError) as e:
        check_services(city, "app-medical", {"eligibility", "report"})
    assert "no service `refunds`" in str(e.value) and e.value.line == start + 2
