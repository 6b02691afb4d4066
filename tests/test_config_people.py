"""``[people]`` of city.toml, ``identifies`` on columns and ``people``/``consent`` in
``[[callers]]``: each mistake names the file and the line to change."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from zhongshu.config import load_city
from zhongshu.errors import ConfigError


def _copy(demo_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "city"
    shutil.copytree(demo_dir, root, ignore=shutil.ignore_patterns("state", "ledger.pin", "data"))
    return root


def _line(path: Path, needle: str) -> int:
    return next(n for n, t in enumerate(path.read_text().splitlines(), 1) if needle in t)


def _fails(root: Path, path: Path, needle: str, words: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as e:
        load_city(root)
    msg = str(e.value)
    assert f"{path}:{_line(path, needle)}:" in msg, msg
    for w in words:
        assert w in msg, msg


def test_demo_people_section_loads(demo_dir: Path, tmp_path: Path) -> None:
    root = _copy(demo_dir, tmp_path)
    city = load_city(root)
    assert city.people is not None and city.people.registry == "traffic.vehicles"
    cols = {c.name: c.identifies for c in city.datasets()["traffic.vehicles"][1].columns}
    assert cols["plate"] == "plate" and cols["owner_id_number"] == "id_number"


@pytest.mark.parametrize(("old", "new", "needle", "words"), [
    ('algorithms = [\n    "ES256",\n]', 'algorithms = ["HS256"]', "HS256", ("algorithms", "ES256")),
    ('registry_owner = "owner_id_number"', 'registry_owner = "owner"', "registry_owner",
     ("owner",)),
    ('registry = "traffic.vehicles"', 'registry = "traffic.cars"', 'registry = ',
     ("traffic.cars",)),
    ('member = "traffic-police"', 'member = "secret-police"', "secret-police",
     ("secret-police",)),
    ('jwks_url = "/demo/idp/jwks.json"', 'jwks_url = "file:///etc/jwks.json"', "jwks_url",
     ("jwks_url",)),
])
def test_bad_people_settings_name_the_line(demo_dir: Path, tmp_path: Path, old: str, new: str,
                                           needle: str, words: tuple[str, ...]) -> None:
    root = _copy(demo_dir, tmp_path)
    path = root / "city.toml"
    text = path.read_text(encoding="utf-8")
    assert old in text, text
    path.write_text(text.replace(old, new), encoding="utf-8")
    _fails(root, path, needle, words)


def test_identifying_column_must_be_personal(demo_dir: Path, tmp_path: Path) -> None:
    root = _copy(demo_dir, tmp_path)
    path = root / "members" / "traffic-police.toml"
    text = path.read_text(encoding="utf-8")
    old = 'classification = "sensitive"\ndescription = "the registered owner'
    assert old in text
    path.write_text(text.replace(old, 'classification = "internal"\ndescription = "the '
                                      'registered owner'), encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_city(root)
    assert "owner_id_number" in str(e.value) and "personal" in str(e.value)
    assert str(path) in str(e.value)


def test_consent_without_people_is_refused(demo_dir: Path, tmp_path: Path) -> None:
    root = _copy(demo_dir, tmp_path)
    path = root / "members" / "app-medical.toml"
    text = path.read_text(encoding="utf-8")
    assert "people = true\nconsent = true" in text
    path.write_text(text.replace("people = true\nconsent = true", "consent = true"),
                    encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_city(root)
    assert "people = true" in str(e.value) and str(path) in str(e.value)
