"""``zhongshu catalog confirm`` edits one line of a member file: the named dataset's
``listed``. Checked against ``tomllib`` reading the result (the oracle), on files with
sub-tables, several datasets, comments and names that look alike."""

from __future__ import annotations

import tomllib

import pytest

from zhongshu.catalog.confirm import confirm
from zhongshu.errors import ConfigError

FILE = '''# Member `parks`.
[member]
name = "parks"
kind = "department"

[[datasets]]
name = "parks.trees_old"  # a name that starts like the next one
listed = false
source = "parks-db"
table = "trees_old"
[[datasets.columns]]
name = "parks.trees"
type = "VARCHAR"

[[datasets]]
name = "parks.trees"
title = "Trees"
listed = false  # true once you have checked every column below
source = "parks-db"
table = "trees"
columns = [
  { name = "tree_id", type = "VARCHAR", classification = "internal" },  # listed = false
]
[datasets.entity]
type = "Tree"

[[datasets]]
name = 'parks.plots'
source = "parks-db"
table = "plots"

[[grants]]
consumer = "cockpit-city"
datasets = ["parks.trees"]
purposes = ["city-operations"]
'''


def _listed(text: str) -> dict[str, bool]:
    return {d["name"]: d.get("listed", True) for d in tomllib.loads(text)["datasets"]}


def test_only_the_named_datasets_listed_line_changes() -> None:
    text, changed = confirm(FILE, "parks.trees", "parks.toml")
    assert changed
    assert _listed(text) == {"parks.trees_old": False, "parks.trees": True, "parks.plots": True}
    before, after = FILE.splitlines(), text.splitlines()
    diff = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert diff == [("listed = false  # true once you have checked every column below",
                     "listed = true  # true once you have checked every column below")]


@pytest.mark.parametrize("name", ["parks.trees_old", "parks.trees"])
def test_confirming_twice_changes_nothing_the_second_time(name: str) -> None:
    once, changed = confirm(FILE, name, "parks.toml")
    assert changed and _listed(once)[name]
    twice, again = confirm(once, name, "parks.toml")
    assert not again and twice == once


def test_a_dataset_without_a_listed_line_is_listed_already() -> None:
    text, changed = confirm(FILE, "parks.plots", "parks.toml")
    assert not changed and text == FILE


@pytest.mark.parametrize("name", ["parks.tree", "parks", "tree_id", "parks.trees.x", ""])
def test_a_name_the_file_does_not_declare_is_refused_with_the_file(name: str) -> None:
    with pytest.raises(ConfigError) as refused:
        confirm(FILE, name, "members/parks.toml")
    assert str(refused.value).startswith("members/parks.toml: declares no dataset")
