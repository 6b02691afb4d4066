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


PARKS = """[member]
name = "parks"
kind = "department"
title = "Parks"

[[sources]]
name = "parks-db"
kind = "csv"
path = "data/parks"

[[datasets]]
name = "parks.inventory"
title = "Trees"
description = "one row per tree"
source = "parks-db"
table = "trees"

[[datasets.columns]]
name = "tree_id"
type = "BIGINT"
classification = "public"

[[grants]]
consumer = "cockpit"
datasets = ["parks.inventory"]
purposes = ["city-operations"]
masking = {tree_id = "MASK"}

[member_extra]
"""


def _city(root: Path, mask: str = "pseudonym") -> Path:
    assert zs("init", "puer", "--dir", str(root)).returncode == 0
    (root / "data" / "parks").mkdir(parents=True)
    (root / "data" / "parks" / "trees.csv").write_text("tree_id\n1\n2\n")
    (root / "members" / "parks.toml").write_text(
        PARKS.replace("MASK", mask).replace("\n[member_extra]\n", ""))
    (root / "members" / "cockpit.toml").write_text(
        '[member]\nname = "cockpit"\nkind = "cockpit"\ntitle = "Cockpit"\n')
    return root


def test_configuration_mistakes_name_the_file_the_line_and_the_fix(city_tmp: Path) -> None:
    root = _city(city_tmp / "puer", mask="pseudonim")
    res = zs("catalog", "check", "--dir", str(root))
    assert res.returncode == 1
    # the valid kinds listed, and no pydantic internals in the location
    assert "parks.toml:" in res.stderr and "`pseudonim` is not one of" in res.stderr
    assert "`pseudonym`" in res.stderr and "function-after" not in res.stderr
    (root / "members" / "parks.toml").write_text(PARKS.replace("MASK", "pseudonym")
                                                 .replace("\n[member_extra]\n", ""))
    assert zs("catalog", "check", "--dir", str(root)).returncode == 0
    # a member file with a typo in its extension was silently ignored
    (root / "members" / "trees.tml").write_text("[member]\n")
    res = zs("catalog", "check", "--dir", str(root))
    assert res.returncode == 1 and "trees.tml" in res.stderr and ".toml" in res.stderr
    (root / "members" / "trees.tml").unlink()
    # a member whose name is not its file's
    text = (root / "members" / "cockpit.toml").read_text()
    (root / "members" / "cockpit.toml").write_text(text.replace('"cockpit"', '"cockpit-puer"', 1))
    res = zs("catalog", "check", "--dir", str(root))
    assert res.returncode == 1 and "cockpit.toml:2:" in res.stderr
    assert "cockpit-puer" in res.stderr


def test_serve_on_a_busy_port_says_so_before_anything_else(city_tmp: Path) -> None:
    import socket

    root = _city(city_tmp / "puer")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = zs("serve", "--dir", str(root), "--port", str(port))
    assert res.returncode == 1
    assert f"127.0.0.1:{port}" in res.stderr and "in use" in res.stderr
    assert "Hub for" not in res.stdout  # no URL printed for a hub that will not serve


def test_a_new_city_hears_nothing_of_the_demos_scenarios(city_tmp: Path) -> None:
    from tests.conftest import HubProcess, free_port

    root = _city(city_tmp / "puer")
    hub = HubProcess(root, free_port())
    try:
        pass
    finally:
        hub.stop()
    log = hub.log_path.read_text()
    assert "scenario" not in log.lower(), log
