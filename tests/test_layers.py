"""Imports flow one way (``DESIGN.md``): every module under ``zhongshu/`` imports only what
its part may, read from the source with ``ast`` — module-level and function-level imports
alike, and those under ``if TYPE_CHECKING:`` too (a type is still a dependency on a part's
shape, and a cycle hidden there is still a cycle). Imports spelled as strings
(``importlib.import_module``, entry points) are not seen.

What each part may import, besides its own modules and the root ``zhongshu`` package (its name
and version; the root itself imports nothing). The main chain is protocol → query → policy →
catalog → sources, and for peer hubs query → federation → client: a part may import the parts
to its right, never those to its left.

=========  ===============================================================================
part       may import
=========  ===============================================================================
errors     nothing: the one error tree
config     errors (config and errors are importable by every part but the client)
stores     errors: the hub's own state behind small interfaces (``zhongshu.stores``)
sources    config, errors
catalog    stores, sources, config, errors
policy     catalog, stores, sources, config, errors
ledger     config, errors — and is used by protocol and query only through its public API:
           ``zhongshu.ledger`` and the names (functions, classes, modules) in the
           ``__all__`` of ``zhongshu/ledger/__init__.py``; no other part uses it
client     errors only: the client stands alone (``pip install zhongshu`` gives it)
federation client, config, errors (a peer hub is reached through the protocol's client)
query      policy, catalog, stores, sources, federation, client, ledger (public), config,
           errors
protocol   query, policy, catalog, stores, sources, federation, client (the signature base
           is shared there), ledger (public), config, errors
streams    sources (the MQTT and NATS adapters it consumes), config, errors; its windows
           reach the query layer as datasets, not as imports
traffic    config, errors: counting, congestion and signal control are computations on
           data handed in, with no hub state (so scenarios may use them)
scenarios  client, traffic, config, errors: a scenario is an app on the protocol
cockpit    client, config (the city's public geography), errors
demo       catalog and policy (it issues the demo members' tokens), scenarios (it creates
           their stores), traffic (the live feed counts vehicles), client, config, errors
template   config, errors: ``zhongshu init`` scaffolds configuration files
extras     nothing: which extra brings which module (the CLI's hint for a missing one)
node       everything: the composition root
reload     node, protocol (the wire endpoint it repoints), config, errors: a serving
           hub's configuration followed without a restart (it builds nodes)
cli        everything (``zhongshu/cli.py`` and ``zhongshu/cli_*.py``)
=========  ===============================================================================

Nothing under ``zhongshu/`` imports ``tests`` or ``bench``, whatever its part.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVERYTHING = "*"
BASE = ("config", "errors")
CHAIN = "protocol → query → policy → catalog → sources (and query → federation → client)"

MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "zhongshu": (),
    "errors": (),
    "config": ("errors",),
    "stores": ("errors",),
    "sources": BASE,
    "catalog": ("stores", "sources", *BASE),
    "policy": ("catalog", "stores", "sources", *BASE),
    "ledger": BASE,
    "client": ("errors",),
    "federation": ("client", *BASE),
    "query": ("policy", "catalog", "stores", "sources", "federation", "client", "ledger",
              *BASE),
    "protocol": ("query", "policy", "catalog", "stores", "sources", "federation", "client",
                 "ledger", *BASE),
    "streams": ("sources", *BASE),
    "traffic": BASE,
    "scenarios": ("client", "traffic", *BASE),
    "cockpit": ("client", *BASE),
    "demo": ("catalog", "policy", "scenarios", "traffic", "client", *BASE),
    "template": BASE,
    "extras": (),
    "node": (EVERYTHING,),
    "reload": ("node", "protocol", *BASE),
    "cli": (EVERYTHING,),
}
WHY = {
    "zhongshu": "the root package holds the name and version only, importable by all",
    "errors": "errors is the bottom of every part",
    "stores": "stores sit at the bottom: interfaces and their implementations only",
    "config": "config is importable by every part, so it imports only errors",
    "client": "the client imports nothing of the hub but zhongshu.errors",
    "federation": "query → federation → client: federation reaches peers through the client",
    "ledger": "ledger is a leaf used by protocol and query only",
    "traffic": "traffic is computation without hub state",
    "scenarios": "scenarios use the client, never the internals",
    "cockpit": "the cockpit uses the client, never the internals",
    "demo": "demo builds a city and issues its tokens; it queries only through the client",
    "template": "template scaffolds configuration",
    "extras": "extras only names the distribution's extras",
    "streams": "streams consume the stream sources; windows reach query as datasets",
    "reload": "reload rebuilds the node; only the CLI and tests use it",
}
PUBLIC_ONLY = ("ledger",)  # parts others may use only through their package's __all__

# Violations tolerated while a refactor removes them: (importing module, imported module) →
# what removes it. Issue 14 emptied it; an entry whose import is gone fails the suite.
KNOWN: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Violation:
    """One import that breaks a rule."""

    importer: str
    imported: str
    line: int
    rule: str

    def __str__(self) -> str:
        return f"{self.importer} imports {self.imported} (line {self.line}): {self.rule}"


def modules(root: Path) -> dict[str, Path]:
    """Every module of the ``zhongshu`` package under ``root``, by dotted name."""
    out = {}
    for path in sorted((root / "zhongshu").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def part_of(module: str) -> str:
    """The part a dotted ``zhongshu`` module belongs to (``zhongshu.cli_ledger`` → cli)."""
    head = module.split(".")[1] if "." in module else "zhongshu"
    return "cli" if head == "cli" or head.startswith("cli_") else head


def imports(module: str, path: Path, known: set[str]) -> list[tuple[str, str | None, int]]:
    """Every import in the module at ``path``, anywhere in it: (imported module, the name
    taken from it or None, line). ``from a import b`` is module ``a.b`` when that is a
    module of the package, else name ``b`` of ``a``; relative imports are resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: list[tuple[str, str | None, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([node.module] if node.module else [])])
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.append((sub, None, node.lineno) if sub in known
                           else (base, a.name, node.lineno))
    return out


def public_names(root: Path, part: str) -> set[str]:
    """The ``__all__`` of ``zhongshu/<part>/__init__.py``, read without importing it."""
    init = root / "zhongshu" / part / "__init__.py"
    if not init.is_file():
        return set()
    for node in ast.walk(ast.parse(init.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Assign | ast.AnnAssign) and any(
                isinstance(t, ast.Name) and t.id == "__all__"
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target])):
            assert node.value is not None
            return {str(v) for v in ast.literal_eval(node.value)}
    return set()


def violations(root: Path) -> list[Violation]:
    """Every import under ``root/zhongshu`` that breaks the table of this module, and every
    part the table does not know (a new part needs a row)."""
    known = modules(root)
    public = {p: public_names(root, p) for p in PUBLIC_ONLY}
    out: dict[tuple[str, str, int], Violation] = {}
    for module, path in known.items():
        me = part_of(module)
        if me not in MAY_IMPORT:
            out[module, "-", 0] = Violation(module, "-", 0, f"part `{me}` has no row in the "
                                            "table of tests/test_layers.py: say what it may "
                                            "import")
            continue
        allowed = MAY_IMPORT[me]
        for target, name, line in imports(module, path, set(known)):
            top = target.split(".")[0]
            if top in ("tests", "bench"):
                out[module, target, line] = Violation(
                    module, target, line, "nothing under zhongshu/ imports from tests/ or bench/")
                continue
            if top != "zhongshu":
                continue
            other = part_of(target)
            if other in (me, "zhongshu") or EVERYTHING in allowed:
                continue
            if other not in allowed:
                may = ", ".join(allowed) or "nothing of zhongshu"
                why = WHY.get(me, f"{CHAIN}: a part imports only those to its right")
                out[module, target, line] = Violation(module, target, line,
                                                      f"{me} may import {may} — {why}")
            elif other in PUBLIC_ONLY:
                rest = target.split(".")[2:]
                used = rest[0] if rest else name
                if used is not None and used not in public[other]:
                    shown = target if rest else f"{target}.{name}"
                    out[module, shown, line] = Violation(module, shown, line, (
                        f"{other} is used only through its public API: zhongshu.{other} and "
                        f"the names in its __all__ ({', '.join(sorted(public[other]))})"))
    return list(out.values())


FOUND = violations(ROOT)


@pytest.mark.parametrize("part", sorted({part_of(m) for m in modules(ROOT)}))
def test_imports_follow_the_layers(part: str) -> None:
    bad = [str(v) for v in FOUND
           if part_of(v.importer) == part and (v.importer, v.imported) not in KNOWN]
    assert not bad, "\n".join(bad)


def test_known_violations_are_current() -> None:
    """Every entry of ``KNOWN`` (violations waiting for a refactor) is still a violation: an
    entry whose import is gone must be removed, so the table never hides a new one."""
    found = {(v.importer, v.imported) for v in FOUND}
    assert not [f"{a} -> {b}" for a, b in KNOWN if (a, b) not in found]


def test_every_part_has_a_row() -> None:
    parts = {part_of(m) for m in modules(ROOT)}
    assert {"sources", "catalog", "policy", "query", "ledger", "protocol"} <= parts
    assert parts <= set(MAY_IMPORT), sorted(parts - set(MAY_IMPORT))


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        for parent in path.relative_to(root).parents:
            if str(parent) != ".":
                (root / parent / "__init__.py").touch()
    return root


def test_a_synthetic_violation_is_caught(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "zhongshu/errors.py": "",
        "zhongshu/ledger/__init__.py": "from zhongshu.ledger.log import Ledger\n"
                                       "__all__ = ['Ledger', 'entry']\n",
        "zhongshu/ledger/log.py": "", "zhongshu/ledger/entry.py": "",
        "zhongshu/ledger/store.py": "",
        "zhongshu/query/service.py": "from zhongshu.ledger import Ledger, entry\n",
        "zhongshu/sources/base.py": "import zhongshu.errors\n"
                                    "def f():\n    from zhongshu.query import service\n",
        "zhongshu/policy/rules.py": "from typing import TYPE_CHECKING\n"
                                    "if TYPE_CHECKING:\n    from zhongshu.query.service import X\n"
                                    "from . import other\nfrom ..catalog import catalog\n",
        "zhongshu/policy/other.py": "", "zhongshu/catalog/catalog.py": "",
        "zhongshu/protocol/app.py": "from zhongshu.ledger.store import S\n"
                                    "from zhongshu.ledger import log\nfrom tests import x\n",
        "zhongshu/client/__init__.py": "from zhongshu.protocol import app\n",
        "zhongshu/scenarios/x.py": "from zhongshu.client import Hub\n"
                                   "from zhongshu.query.service import QueryService\n",
        "zhongshu/cli_extra.py": "from zhongshu.ledger.store import S\nimport bench.ledger\n",
        "zhongshu/wizard/__init__.py": "",
    })
    got = {(v.importer, v.imported): v for v in violations(root)}
    assert set(got) == {
        ("zhongshu.sources.base", "zhongshu.query.service"),    # function-level
        ("zhongshu.policy.rules", "zhongshu.query.service"),    # under TYPE_CHECKING
        ("zhongshu.protocol.app", "zhongshu.ledger.store"),     # not in the ledger's __all__
        ("zhongshu.protocol.app", "zhongshu.ledger.log"),
        ("zhongshu.protocol.app", "tests"),
        ("zhongshu.client", "zhongshu.protocol.app"),
        ("zhongshu.scenarios.x", "zhongshu.query.service"),
        ("zhongshu.cli_extra", "bench.ledger"),                 # even the CLI
        ("zhongshu.wizard", "-"),                               # a part without a row
    }, sorted(got)
    message = str(got[("zhongshu.sources.base", "zhongshu.query.service")])
    assert message.startswith("zhongshu.sources.base imports zhongshu.query.service (line 3)")
    assert "sources may import config, errors" in message
    assert "public API" in str(got[("zhongshu.protocol.app", "zhongshu.ledger.store")])
    assert "client imports nothing of the hub" in str(got[("zhongshu.client",
                                                           "zhongshu.protocol.app")])
    assert "tests/ or bench/" in str(got[("zhongshu.cli_extra", "bench.ledger")])
