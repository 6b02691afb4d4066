"""The Merkle tree against the transparency-dev/merkle reference vectors (RFC 6962/9162).

Vectors: https://github.com/transparency-dev/merkle, testonly/reference_test.go (Apache-2.0):
the standard 8-leaf tree, its roots, inclusion and consistency proofs.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zhongshu.ledger import merkle

LEAVES = [bytes.fromhex(x) for x in [
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f"]]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]
INCLUSION = [
    (1, 0, []),
    (2, 0, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"]),
    (2, 1, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"]),
    (3, 2, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (5, 1, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (8, 0, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (8, 5, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]


def _tree(leaves: list[bytes]) -> tuple[merkle.Stored, list[bytes]]:
    store: dict[tuple[int, int], bytes] = {}
    f = merkle.Frontier()
    roots = []
    for leaf in leaves:
        out: list[tuple[int, int, bytes]] = []
        f.append(merkle.leaf_hash(leaf), out)
        store.update({(lv, i): h for lv, i, h in out})
        roots.append(f.root())
    return (lambda lv, i: store[(lv, i)]), roots


def _naive_root(hashes: list[bytes]) -> bytes:
    """RFC 9162 MTH, written from the definition (the oracle)."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _naive_root(hashes[:k]) + _naive_root(hashes[k:])).digest()


def test_roots_match_the_reference() -> None:
    stored, roots = _tree(LEAVES)
    assert [r.hex() for r in roots] == ROOTS
    assert [merkle.root(stored, n).hex() for n in range(1, 9)] == ROOTS
    assert merkle.root(stored, 0) == hashlib.sha256(b"").digest()


@pytest.mark.parametrize(("size", "index", "proof"), INCLUSION)
def test_inclusion_proofs_match_the_reference(size: int, index: int, proof: list[str]) -> None:
    stored, _ = _tree(LEAVES)
    got = merkle.inclusion_proof(stored, index, size)
    assert [h.hex() for h in got] == proof
    leaf = merkle.leaf_hash(LEAVES[index])
    root = bytes.fromhex(ROOTS[size - 1])
    assert merkle.verify_inclusion(index, size, leaf, got, root)
    assert not merkle.verify_inclusion(index, size, merkle.leaf_hash(b"other"), got, root)
    if got:
        bad = [bytes(32)] + got[1:]
        assert not merkle.verify_inclusion(index, size, leaf, bad, root)


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_proofs_match_the_reference(old: int, new: int, proof: list[str]) -> None:
    stored, _ = _tree(LEAVES)
    got = merkle.consistency_proof(stored, old, new)
    assert [h.hex() for h in got] == proof
    r1, r2 = bytes.fromhex(ROOTS[old - 1]), bytes.fromhex(ROOTS[new - 1])
    assert merkle.verify_consistency(old, new, r1, r2, got)
    if old != new:
        assert not merkle.verify_consistency(old, new, r2, r1, got)
        assert not merkle.verify_consistency(old, new, r1, r2, got[:-1])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.data())
def test_every_proof_verifies_and_tampering_fails(size: int, data: st.DataObject) -> None:
    leaves = [i.to_bytes(4, "big") for i in range(size)]
    stored, roots = _tree(leaves)
    assert roots[-1] == _naive_root([merkle.leaf_hash(x) for x in leaves])
    i = data.draw(st.integers(0, size - 1))
    proof = merkle.inclusion_proof(stored, i, size)
    assert len(proof) <= size.bit_length()
    assert merkle.verify_inclusion(i, size, merkle.leaf_hash(leaves[i]), proof, roots[-1])
    assert not merkle.verify_inclusion(i, size, merkle.leaf_hash(b"x"), proof, roots[-1])
    old = data.draw(st.integers(0, size))
    cproof = merkle.consistency_proof(stored, old, size)
    old_root = roots[old - 1] if old else hashlib.sha256(b"").digest()
    assert merkle.verify_consistency(old, size, old_root, roots[-1], cproof)
    if 0 < old < size:
        assert not merkle.verify_consistency(old, size, merkle.leaf_hash(b"x"), roots[-1],
                                             cproof)
