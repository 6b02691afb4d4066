"""The people's page (``cockpit/static/me.html``): its proof check, run under Node against
proofs of a Merkle tree computed here from ``hashlib`` (RFC 9162), accepts every true proof
and rejects tampered ones; the page has no inline script (the cockpit's CSP)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

import zhongshu.cockpit

STATIC = Path(zhongshu.cockpit.__file__).with_name("static")


def _h(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def _root(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return _h(b"\x01" + _root(leaves[:k]) + _root(leaves[k:]))


def _path(i: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if i < k:
        return [*_path(i, leaves[:k]), _root(leaves[k:])]
    return [*_path(i - k, leaves[k:]), _root(leaves[:k])]


@pytest.mark.skipif(shutil.which("node") is None, reason="Node is not installed")
def test_the_pages_proof_check_agrees_with_rfc_9162(tmp_path: Path) -> None:
    cases = []
    for size in (1, 2, 3, 5, 8, 13):
        entries = [f'{{"i":{n}}}'.encode() for n in range(size)]
        leaves = [_h(b"\x00" + e) for e in entries]
        root = _root(leaves)
        for i in range(size):
            path = [p.hex() for p in _path(i, leaves)]
            cases.append({"i": i, "size": size, "entry": entries[i].decode(), "path": path,
                          "root": root.hex(), "ok": True})
            if path:  # a tampered hash, and a wrong index
                cases.append({**cases[-1], "path": ["00" * 32, *path[1:]], "ok": False})
            if size > 1:
                cases.append({**cases[-1], "path": path, "i": (i + 1) % size, "ok": False})
    script = tmp_path / "check.js"
    script.write_text(f"""
const m = require({json.dumps(str(STATIC / "me.js"))});
const cases = {json.dumps(cases)};
(async () => {{
  const out = [];
  for (const c of cases) {{
    const leaf = await m.sha256(m.cat([0], new TextEncoder().encode(c.entry)));
    const r = await m.rootFrom(c.i, c.size, leaf, c.path.map(m.hex));
    out.push(r !== null && Buffer.from(r).toString("hex") === c.root);
  }}
  console.log(JSON.stringify(out));
}})();
""")
    got = json.loads(subprocess.run(["node", str(script)], capture_output=True, text=True,
                                    check=True, timeout=60).stdout)
    assert got == [c["ok"] for c in cases]


def test_the_page_has_no_inline_script() -> None:
    html = (STATIC / "me.html").read_text(encoding="utf-8")
    assert "<script>" not in html and "onclick=" not in html
    assert '<script src="/cockpit/static/me.js" defer></script>' in html
