"""What `pip install zhongshu` gives: the client and the CLI, without SUMO, the DuckDB
scanner extensions or the server stack; each of those comes with an extra
(``zhongshu[hub]``, ``[postgres]``, ``[mysql]``, ``[streams]``, ``[traffic]``, ``[all]``)."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import RunningHub
from zhongshu.extras import EXTRA_OF, WHAT

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
# never installed without an extra: SUMO (~690 MB), the scanners, the drivers, the server
NOT_IN_BASE = re.compile(r"eclipse-sumo|libsumo|sumolib|sumo-data|traci|duckdb.*|fastapi|"
                         r"starlette|uvicorn|sqlglot|psycopg.*|pymysql|paho-mqtt|nats-py|numpy")
P = "city-operations"
SQL = "SELECT district, count(*) AS n FROM traffic.checkpoints GROUP BY 1 ORDER BY 1"


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement (PEP 503)."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]).lower()


def _extra(name: str) -> set[str]:
    """The distributions an extra installs beyond the base, its `zhongshu[...]` expanded."""
    found: set[str] = set()
    for req in PROJECT["optional-dependencies"][name]:
        if _name(req) == "zhongshu":
            for inner in re.search(r"\[(.*)\]", req).group(1).split(","):  # type: ignore[union-attr]
                found |= _extra(inner.strip())
        else:
            found.add(_name(req))
    return found


def _imports() -> dict[str, set[str]]:
    """Third-party top-level module → the files of zhongshu/ that import it (anywhere,
    commands' lazy imports included)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "zhongshu").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module
                     and not node.level else [])
            for top in {n.partition(".")[0] for n in names}:
                if top != "zhongshu" and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_import_comes_with_the_base_or_its_extra() -> None:
    base = {_name(r) for r in PROJECT["dependencies"]}
    assert not {d for d in base if NOT_IN_BASE.fullmatch(d)}
    of_module, imports = importlib.metadata.packages_distributions(), _imports()
    bad = []
    for module, files in imports.items():
        extra = EXTRA_OF.get(module)
        for dist in map(_name, of_module.get(module, [module])):
            if extra is None and dist not in base or extra and dist not in _extra(extra):
                bad.append(f"{module} ({dist}, imported by {sorted(files)[0]}) is in neither "
                           f"the base nor the extra zhongshu.extras names for it ({extra})")
    for module, extra in EXTRA_OF.items():  # the scanners: found by path, never imported
        if module not in imports and _name(module) not in _extra(extra):
            bad.append(f"zhongshu.extras names `{extra}` for {module}, which it does not install")
    assert not bad, "\n".join(bad)
    assert set(WHAT) == set(PROJECT["optional-dependencies"]) - {"all", "dev"}
    everything = set().union(*map(_extra, WHAT))
    assert _extra("all") == everything and everything <= _extra("dev")


# what the base install's commands import (`query` in every format, `--help`, the ledger's
# offline checks): each must import with no extra installed
BASE_MODULES = ("zhongshu.cli", "zhongshu.client", "zhongshu.protocol.encode", "zhongshu.ledger",
                "zhongshu.ledger.verify", "zhongshu.config")
BLOCK_EXTRAS = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Block())
for module in {modules!r}:
    __import__(module)
"""


def test_the_base_commands_import_without_any_extra() -> None:
    """Fast, in this environment: every module an extra brings is made unimportable, then the
    modules the base install's commands use are imported (the slow test below installs)."""
    code = BLOCK_EXTRAS.format(blocked=set(EXTRA_OF), modules=BASE_MODULES)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv holding `pip install <this checkout>`, without extras."""
    venv = tmp_path_factory.mktemp("client") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    # this environment's pip installs into the new one (`--python`), as configured here
    res = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                          "install", "--quiet", str(ROOT)], capture_output=True, text=True,
                         timeout=900, env=_outside())
    assert res.returncode == 0, res.stdout + res.stderr
    return venv


def _outside() -> dict[str, str]:
    """The environment without this checkout on the path (the venv must use its own copy)."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def _run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], capture_output=True,
                          text=True, timeout=120, env=_outside(), cwd=cwd)


@pytest.mark.slow
def test_the_base_install_is_the_client_and_cli(client_venv: Path, hub: RunningHub,
                                                tmp_path: Path) -> None:
    listed = _run(client_venv, "python", "-c", "import importlib.metadata as m, json; "
                  "print(json.dumps([d.name for d in m.distributions()]))", cwd=tmp_path)
    installed = {_name(d) for d in json.loads(listed.stdout)}
    assert "zhongshu" in installed and {"httpx", "pyarrow", "typer"} <= installed
    assert not {d for d in installed if NOT_IN_BASE.fullmatch(d)}, installed
    where = _run(client_venv, "python", "-c", "import zhongshu; print(zhongshu.__file__)",
                 cwd=tmp_path)
    assert where.stdout.startswith(str(client_venv)), where.stdout + where.stderr

    helped = _run(client_venv, "zhongshu", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "query" in helped.stdout, helped.stderr

    token = hub.token("cockpit-city")
    for fmt in ("csv", "json", "table"):
        args = ("query", "--url", hub.url, "--token", token, "--purpose", P, "--format", fmt,
                SQL)
        alone = _run(client_venv, "zhongshu", *args, cwd=tmp_path)
        assert alone.returncode == 0, alone.stderr
        here = subprocess.run([sys.executable, "-m", "zhongshu.cli", *args],
                              capture_output=True, text=True, timeout=120)
        assert alone.stdout == here.stdout, fmt
    assert "xihu" in alone.stdout and "6 row(s)" in alone.stdout

    needs_hub = _run(client_venv, "zhongshu", "catalog", "check", "--dir", str(hub.city_dir),
                     cwd=tmp_path)
    assert needs_hub.returncode == 1
    assert needs_hub.stderr.strip().splitlines() == [
        "error: this command needs the hub: pip install 'zhongshu[hub]'"]
