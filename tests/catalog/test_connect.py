"""``catalog.connect``: the demo city's own sources proposed as its generator declared them,
member files extended without touching what the owner wrote, sources left unchanged."""

from __future__ import annotations

import hashlib
import shutil
import tomllib
from pathlib import Path

import pytest
import tomli_w

from zhongshu.catalog.connect import connect
from zhongshu.config import SourceConfig, load_city
from zhongshu.demo.city import MEMBERS
from zhongshu.errors import BadRequest, SourceUnavailable
from zhongshu.node import Node, Stores

PROTECTED = ("personal", "sensitive")


def _new_city(demo_dir: Path, root: Path) -> Path:
    """A city with the demo's districts and no member (nor the demo's identity provider,
    whose registry is a dataset of the demo's)."""
    doc = tomllib.loads((demo_dir / "city.toml").read_text(encoding="utf-8"))
    doc.pop("people", None)
    (root / "members").mkdir(parents=True)
    (root / "city.toml").write_text(tomli_w.dumps(doc), encoding="utf-8")
    return root


def _url(demo_dir: Path, src: SourceConfig) -> str:
    """The URL a newcomer would give for one of the demo's sources."""
    if src.path:
        scheme = "sqlite" if src.kind == "sqlite" else "file"
        return f"{scheme}://{(demo_dir / src.path).resolve()}"
    scheme = "postgresql" if src.kind == "postgres" else "mysql"
    return f"{scheme}://{src.user}@{src.host}:{src.port}/{src.database}"


def _digest(path: Path) -> dict[str, str]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.parametrize("engines", ["embedded", pytest.param("real", marks=pytest.mark.server)])
def test_the_demo_sources_are_proposed_as_the_demo_declares_them(
        engines: str, request: pytest.FixtureRequest, city_tmp: Path) -> None:
    """Each department's own system (SQLite, Parquet, CSV; with real engines PostgreSQL and
    MariaDB too), connected afresh: every column the demo declares personal or sensitive is
    proposed so (and identifies the same kind of person's identifier), every other is
    proposed open (internal), and the area columns are the demo's. The proposer reads only
    the source; the demo's member files are the oracle."""
    demo_dir: Path = request.getfixturevalue("demo_dir" if engines == "embedded" else "real_dir")
    demo_city = load_city(demo_dir)
    root = _new_city(demo_dir, city_tmp / "new")
    compared = protected = 0
    for member in MEMBERS:
        declared = demo_city.members[member]
        (src,) = declared.sources
        before = _digest(demo_dir / src.path) if src.path else None
        done = connect(root, member, _url(demo_dir, src))
        if src.path:
            assert _digest(demo_dir / src.path) == before  # read, never written
        proposed = {p.table: p for p in done.proposals}
        for ds in declared.datasets:
            p = proposed[ds.table]
            assert p.area_column == ds.area_column, (ds.name, p.area_evidence)
            columns = {c.name: c for c in p.columns}
            for col in ds.columns:
                got = columns[col.name]
                want = col.classification if col.classification in PROTECTED else "internal"
                assert (got.classification, got.identifies) == (want, col.identifies), (
                    ds.name, col.name, got.evidence)
                compared += 1
                protected += col.classification in PROTECTED
    assert compared >= 100 and protected >= 9  # the comparison covered the demo
    city = load_city(root)
    assert all(not d.listed for _, d in city.datasets().values())
    assert not any(mf.grants for mf in city.members.values())
    with Node.open(root, stores=Stores.memory(), monitor=False) as node:  # catalog check
        status = {d.name: (d.status, d.reason) for d in node.catalog.check().values()}
    assert len(status) == sum(len(mf.datasets) for mf in city.members.values()) >= 19
    assert all(s == "ok" for s, _ in status.values()), status


def test_an_owners_file_is_extended_never_rewritten(demo_dir: Path, city_tmp: Path) -> None:
    root = _new_city(demo_dir, city_tmp / "new")
    shutil.copy(demo_dir / "data" / "health.sqlite", root / "data.sqlite")
    own = ('# The health commission: written by hand.\n[member]\nname = "health"\n'
           'kind = "department"\ntitle = "Health Commission"  # 卫健委\n\n'
           '[[sources]]\nname = "his"\nkind = "sqlite"\npath = "data.sqlite"\n\n'
           '[[datasets]]\nname = "health.hospitals"\ntitle = "Our hospitals"\n'
           'source = "his"\ntable = "hospitals"\n'
           'columns = [{ name = "name", type = "VARCHAR", classification = "public" }]\n')
    path = root / "members" / "health.toml"
    path.write_text(own, encoding="utf-8")
    done = connect(root, "health", "sqlite:data.sqlite")
    text = path.read_text(encoding="utf-8")
    assert text.startswith(own)  # every byte the owner wrote, where it was
    assert done.sources == ["his"] and not done.new_sources and not done.created
    assert done.already == [("hospitals", "health.hospitals")]
    assert [p.dataset for p in done.proposals] == ["health.visits"]
    assert text.count("[[sources]]") == 1
    city = load_city(root)
    assert city.datasets()["health.hospitals"][1].title == "Our hospitals"
    assert city.datasets()["health.visits"][1].listed is False
    # once more: nothing new, nothing written
    again = connect(root, "health", "sqlite:data.sqlite")
    assert not again.proposals and path.read_text(encoding="utf-8") == text


def test_bad_urls_and_unreachable_sources_write_nothing(city_tmp: Path) -> None:
    root = city_tmp / "c"
    (root / "members").mkdir(parents=True)
    (root / "city.toml").write_text('[city]\nname = "c"\n', encoding="utf-8")
    for url, words in (("oracle://u@h/db", "unknown URL scheme"),
                       ("postgresql://u@127.0.0.1:5432", "give the host and the database"),
                       ("postgresql://u@127.0.0.1/db?sslmode=x", "unknown URL parameter"),
                       ("sqlite:///no/such/file.db", "no SQLite file"),
                       ("file:///no/such/folder", "no folder"),
                       ("postgresql://u@h:99999/db", "not a URL")):
        with pytest.raises(BadRequest, match=words):
            connect(root, "dept", url)
    with socket_closed() as port, pytest.raises(SourceUnavailable, match="connection refused"):
        connect(root, "dept", f"postgresql://u:pw-Secret-9@127.0.0.1:{port}/db")
    assert not list((root / "members").iterdir()) and not (root / "secrets.toml").exists()
    with pytest.raises(BadRequest, match="member name"):
        connect(root, "Dept", "sqlite:///x.db")
    with pytest.raises(BadRequest, match="member kind `agency` is not one of department"):
        connect(root, "dept", "sqlite:///x.db", kind="agency")


class socket_closed:
    """A loopback port nothing listens on (bound, then closed)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        return None
