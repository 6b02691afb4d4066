"""Source kinds are found through the ``zhongshu.sources`` entry point group — the built-in
ones as well as a package's own, installed for real (a dist-info in a site folder on
``sys.path``, which ``importlib.metadata`` reads), configured in a member file and read
through the hub's query path."""

from __future__ import annotations

import importlib
import shutil
import textwrap
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from tests.conftest import readable_dir
from zhongshu.config import load_city
from zhongshu.errors import ConfigError
from zhongshu.node import Node
from zhongshu.policy.identity import Caller
from zhongshu.sources import Files, NativeSQL, Source, Streaming, kind_class, kinds
from zhongshu.sources.registry import ENTRY_POINTS

BUILT_IN = {"sqlite", "postgres", "mysql", "parquet", "csv", "mqtt", "nats"}


def test_builtin_kinds_come_through_the_entry_point() -> None:
    eps = {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINTS)}
    assert BUILT_IN <= set(eps) and BUILT_IN <= set(kinds())
    for kind in BUILT_IN:
        assert eps[kind].value.startswith(f"zhongshu.sources.{kind}:")
        cls = kind_class(kind)
        assert issubclass(cls, Source) and cls.kind == kind
    abilities = {k: {a.__name__ for a in (NativeSQL, Files, Streaming)
                     if issubclass(kind_class(k), a)} for k in BUILT_IN}
    assert abilities == {"sqlite": {"NativeSQL", "Files"}, "postgres": {"NativeSQL"},
                         "mysql": {"NativeSQL"}, "parquet": {"Files"}, "csv": {"Files"},
                         "mqtt": {"Streaming"}, "nats": {"Streaming"}}


PLUGIN = '''
"""A third party's source kind: folders of tab-separated files."""

from pathlib import Path

import duckdb
from sqlglot import exp

from zhongshu.sources import Files, Source


class TsvSource(Files, Source):
    kind = "tsvtest"

    def attach(self, con: duckdb.DuckDBPyConnection) -> None:
        self.probe()
        con.execute(f"CREATE SCHEMA IF NOT EXISTS memory.{self.alias}")
        for f in sorted(self.path().glob("*.tsv")):
            con.execute(f'CREATE VIEW memory.{self.alias}."{f.stem}" AS SELECT * FROM '
                        f"read_csv('{f}', delim = '\\\\t', header = true)")

    def relation(self, table: str) -> exp.Table:
        return exp.table_(table, db=self.alias, catalog="memory", quoted=True)

    def probe(self) -> None:
        if not any(self.path().glob("*.tsv")):
            raise FileNotFoundError(f"no .tsv files in {self.path().name}")

    def allowed_paths(self) -> list[str]:
        return [str(self.path().resolve()) + "/"]
'''

MEMBER = '''
[member]
name = "tsv-dept"
kind = "department"

[[sources]]
name = "tsv-dept-files"
kind = "tsvtest"
path = "data/tsv-dept"

[[datasets]]
name = "tsvdept.readings"
source = "tsv-dept-files"
table = "readings"
columns = [
  { name = "sensor", type = "VARCHAR" },
  { name = "level", type = "BIGINT" },
]
'''


@pytest.fixture
def site(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A site folder holding a tiny installed distribution that registers kind `tsvtest`."""
    with readable_dir("zs-site-") as root:
        (root / "zs_tsv_kind").mkdir()
        (root / "zs_tsv_kind" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
        info = root / "zs_tsv_kind-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zs-tsv-kind\n"
                                       "Version: 0.1\n")
        (info / "entry_points.txt").write_text(
            f"[{ENTRY_POINTS}]\ntsvtest = zs_tsv_kind:TsvSource\n")
        monkeypatch.syspath_prepend(str(root))  # the DuckDB workers (spawned) inherit it
        importlib.invalidate_caches()
        yield root


def test_a_kind_installed_through_an_entry_point_is_queried(site: Path, demo_dir: Path,
                                                            city_tmp: Path) -> None:
    assert "tsvtest" in kinds()
    assert kind_class("tsvtest").__module__ == "zs_tsv_kind"
    root = city_tmp / "city"
    shutil.copytree(demo_dir, root, ignore=shutil.ignore_patterns("state", "ledger.pin"))
    (root / "members" / "tsv-dept.toml").write_text(MEMBER)
    data = root / "data" / "tsv-dept"
    data.mkdir()
    (data / "readings.tsv").write_text("sensor\tlevel\ns-1\t3\ns-2\t5\ns-1\t4\n")
    with Node.open(root, monitor=False) as node:
        svc = node.query
        src = node.catalog.sources["tsv-dept-files"]
        assert isinstance(src, Files) and not isinstance(src, NativeSQL)
        assert src.health() == "ok" and src.datasets() == ["readings"]
        assert src.schema("readings") == {"sensor": "VARCHAR", "level": "BIGINT"}
        result = svc.run(Caller(svc.catalog.members["tsv-dept"]),
                         "SELECT sensor, sum(level) AS total FROM tsvdept.readings "
                         "GROUP BY sensor ORDER BY sensor", "city-operations")
        assert result.path == "duckdb"
        assert result.rows() == [["s-1", 7], ["s-2", 5]]


def _city_with(tmp_path: Path, demo_dir: Path, source: str) -> Path:
    root = tmp_path / "city"
    root.mkdir(exist_ok=True)
    shutil.copy(demo_dir / "city.toml", root / "city.toml")
    (root / "members").mkdir(exist_ok=True)
    (root / "members" / "m.toml").write_text(
        f'[member]\nname = "m"\nkind = "department"\n\n[[sources]]\nname = "m-db"\n{source}')
    return root


@pytest.mark.parametrize(("source", "words"), [
    ('kind = "oracle"\n', "no source kind `oracle` is installed"),
    ('kind = "sqlite"\n', "a sqlite source needs `path`"),
    ('kind = "postgres"\n', "a postgres source needs `database`"),
    ('kind = "mysql"\npath = "x"\ndatabase = "d"\n', "reads no files; remove `path`"),
    ('kind = "mqtt"\n', "streaming kind; declare it under [[streams]]"),
])
def test_kinds_check_their_own_configuration(tmp_path: Path, demo_dir: Path, source: str,
                                             words: str) -> None:
    root = _city_with(tmp_path, demo_dir, source)
    with pytest.raises(ConfigError) as e:
        load_city(root)
    path = root / "members" / "m.toml"
    line = next(n for n, t in enumerate(path.read_text().splitlines(), 1) if "kind =" in t
                and n > 3)
    assert words in str(e.value)
    assert f"{path}:{line}: sources.0: " in str(e.value)
