"""City configuration: validation names the file, the line and the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from zhongshu.config import load_city, read_secret
from zhongshu.errors import ConfigError


def _city(tmp_path: Path, demo_dir: Path) -> Path:
    root = tmp_path / "city"
    root.mkdir()
    shutil.copy(demo_dir / "city.toml", root / "city.toml")
    (root / "members").mkdir()
    return root


def _member(root: Path, text: str) -> Path:
    path = root / "members" / "m.toml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = '''[member]
name = "m"
kind = "department"

[[sources]]
name = "m-db"
kind = "sqlite"
path = "data/m.sqlite"

[[datasets]]
name = "m.things"
source = "m-db"
table = "things"

[[datasets.columns]]
name = "thing_id"
type = "BIGINT"

[[datasets.columns]]
name = "kind"
type = "VARCHAR"
classification = "{cls}"
'''


def test_valid_member_loads(tmp_path: Path, demo_dir: Path) -> None:
    root = _city(tmp_path, demo_dir)
    _member(root, GOOD.format(cls="public"))
    city = load_city(root)
    assert city.datasets()["m.things"][0] == "m"


def test_bad_classification_names_file_line_and_choices(tmp_path: Path,
                                                         demo_dir: Path) -> None:
    root = _city(tmp_path, demo_dir)
    path = _member(root, GOOD.format(cls="secret"))
    with pytest.raises(ConfigError) as e:
        load_city(root)
    msg = str(e.value)
    line = next(n for n, t in enumerate(path.read_text().splitlines(), 1) if "secret" in t)
    assert f"{path}:{line}:" in msg
    assert "public" in msg and "sensitive" in msg


def test_inline_password_is_refused_with_the_fix(tmp_path: Path, demo_dir: Path) -> None:
    root = _city(tmp_path, demo_dir)
    _member(root, GOOD.format(cls="public").replace('path = "data/m.sqlite"',
                                                    'path = "data/m.sqlite"\npassword = "hunter2"'))
    with pytest.raises(ConfigError) as e:
        load_city(root)
    assert "password_secret" in str(e.value)
    assert "hunter2" not in str(e.value)


def test_unknown_key_and_missing_source(tmp_path: Path, demo_dir: Path) -> None:
    root = _city(tmp_path, demo_dir)
    _member(root, GOOD.format(cls="public").replace('table = "things"', 'tabel = "things"'))
    with pytest.raises(ConfigError, match="unknown key `tabel`"):
        load_city(root)
    _member(root, GOOD.format(cls="public").replace('source = "m-db"', 'source = "other"'))
    with pytest.raises(ConfigError, match="source `other`.*does not declare"):
        load_city(root)


def test_invalid_toml_reports_line(tmp_path: Path, demo_dir: Path) -> None:
    root = _city(tmp_path, demo_dir)
    path = _member(root, "[member]\nname = \n")
    with pytest.raises(ConfigError, match=rf"{path}:2: not valid TOML"):
        load_city(root)


def test_no_city_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="zhongshu init"):
        load_city(tmp_path)


def test_secret_from_environment_then_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    (tmp_path / "secrets.toml").write_text('[secrets]\ndb-pw = "from-file"\n')
    assert read_secret(tmp_path, "db-pw") == "from-file"
    monkeypatch.setenv("ZHONGSHU_SECRET_DB_PW", "from-env")
    assert read_secret(tmp_path, "db-pw") == "from-env"
    with pytest.raises(ConfigError, match="ZHONGSHU_SECRET_NOPE"):
        read_secret(tmp_path, "nope")


def test_env_overrides_hub_settings(demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHONGSHU_ROW_CAP", "77")
    assert load_city(demo_dir).hub.row_cap == 77
    monkeypatch.setenv("ZHONGSHU_ROW_CAP", "many")
    with pytest.raises(ConfigError, match="ZHONGSHU_ROW_CAP"):
        load_city(demo_dir)


def test_env_overrides_ledger_settings(demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHONGSHU_LEDGER_ENABLED", "false")
    monkeypatch.setenv("ZHONGSHU_LEDGER_CHECKPOINT_INTERVAL_S", "2.5")
    city = load_city(demo_dir)
    assert city.ledger.enabled is False and city.ledger.checkpoint_interval_s == 2.5
    monkeypatch.setenv("ZHONGSHU_LEDGER_CHECKPOINT_INTERVAL_S", "-1")
    with pytest.raises(ConfigError, match="ZHONGSHU_LEDGER_CHECKPOINT_INTERVAL_S"):
        load_city(demo_dir)


def test_stream_aggregates_are_checked_and_served_as_datasets(demo_dir: Path,
                                                              tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "city"
    shutil.copytree(demo_dir, root, ignore=shutil.ignore_patterns("state", "ledger.pin"))
    member = root / "members" / "traffic-police.toml"
    base = member.read_text()
    stream = ('\n[[streams]]\nname = "live"\nkind = "mqtt"\ntopic = "t"\n'
              'time_column = "at"\ncolumns = [{ name = "at", type = "TIMESTAMP" }, '
              '{ name = "cam", type = "VARCHAR" }]\n')
    good = stream + ('\n[[aggregates]]\ndataset = "traffic.live"\nstream = "live"\n'
                     'group_by = ["cam"]\nmeasures = { n = "count(*)" }\n')
    member.write_text(base + good)
    city = load_city(root)
    owner, ds = city.datasets()["traffic.live"]
    assert owner == "traffic-police" and [c.name for c in ds.columns] == [
        "window_start", "window_end", "cam", "n"]
    assert city.sources()["traffic-police-streams"][1].path == "streams/traffic-police.sqlite"
    for bad, words in [(good.replace('stream = "live"', 'stream = "nope"'), "nope"),
                       (good.replace("count(*)", "median(cam)"), "median(cam)"),
                       (good.replace('["cam"]', '["camera"]'), "camera"),
                       (good + 'where = "cam2"\n', "where `cam2`"),
                       (stream.replace('time_column = "at"', 'time_column = "when"'), "when")]:
        member.write_text(base + bad)
        with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
            load_city(root)
    # stream names are city-wide (the hub routes messages by them)
    member.write_text(base + good)
    other = root / "members" / "parking-westlake.toml"
    other.write_text(other.read_text() + stream)
    with pytest.raises(ConfigError, match="stream `live` is already declared by member"):
        load_city(root)
