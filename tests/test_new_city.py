"""A new city's first steps (issue: a new city in ten minutes): the stops a newcomer hit, each
checked against what they would see."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.test_cli import zs


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_demo_never_writes_into_a_folder_it_did_not_create(city_tmp: Path) -> None:
    """`zhongshu demo --dir puer` on a new city's folder once replaced its city.toml, member
    files, secrets and data with the demo's."""
    root = city_tmp / "puer"
    assert zs("init", "puer", "--dir", str(root)).returncode == 0
    (root / "data" / "trees.csv").write_text("tree_id,species\n1,ginkgo\n")
    before = _files(root)
    for extra in ((), ("--fresh",)):
        res = zs("demo", "--dir", str(root), "--no-serve", "--scale", "0.005", *extra)
        assert res.returncode == 1, res.stdout
        assert "not a demo city" in res.stderr and "Traceback" not in res.stderr
    assert _files(root) == before


def test_a_new_city_is_not_told_to_run_the_demo(city_tmp: Path) -> None:
    root = city_tmp / "puer"
    assert zs("init", "puer", "--dir", str(root)).returncode == 0
    res = zs("query", "--dir", str(root), "--as", "cockpit-city", "--purpose", "x", "SELECT 1")
    assert res.returncode == 1
    assert "zhongshu demo" not in res.stderr
    assert "zhongshu members token cockpit-city" in res.stderr


def test_square_brackets_survive_in_error_messages(city_tmp: Path) -> None:
    """Console markup once ate bracketed text out of messages ("under  or …")."""
    res = zs("init", "bad[x]name", "--dir", str(city_tmp / "c"))
    assert res.returncode == 1
    assert "bad[x]name" in res.stderr
