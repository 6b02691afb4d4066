"""RFC 9162 Merkle trees: hashing, proofs from stored complete subtrees, and verification.

A tree of size ``n`` over leaves ``0..n-1``; a *complete subtree* ``(level, index)`` covers
leaves ``[index·2^level, (index+1)·2^level)`` and is stored once it is complete, so any
proof needs O(log n) stored hashes. Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2
to the letter and needs nothing but hashlib.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()
Stored = Callable[[int, int], bytes]  # (level, index) -> hash of a complete subtree


def leaf_hash(entry: bytes) -> bytes:
    """``SHA-256(0x00 ‖ entry)``.

    >>> leaf_hash(b"").hex()  # RFC 6962's empty leaf
    '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d'
    """
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 ‖ left ‖ right)``.

    >>> node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    True
    """
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n ≥ 2).

    >>> _split(2), _split(5), _split(8), _split(9)
    (1, 4, 4, 8)
    """
    return 1 << ((n - 1).bit_length() - 1)


def subtree_hash(stored: Stored, lo: int, hi: int) -> bytes:
    """The hash of leaves ``[lo, hi)``, where ``lo`` is a multiple of the split sizes the
    RFC's recursion produces (as every range in a proof is)."""
    n = hi - lo
    if n == 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0:
        level = n.bit_length() - 1
        return stored(level, lo >> level)
    # the right edge is incomplete: fold its complete subtrees from the right
    parts: list[bytes] = []
    while lo < hi:
        k = _split(hi - lo) if (hi - lo) & (hi - lo - 1) else hi - lo
        level = k.bit_length() - 1
        parts.append(stored(level, lo >> level))
        lo += k
    h = parts[-1]
    for p in reversed(parts[:-1]):
        h = node_hash(p, h)
    return h


def root(stored: Stored, size: int) -> bytes:
    """The root hash of the tree of ``size`` leaves.

    >>> stored = _example(5)
    >>> root(stored, 2) == node_hash(leaf_hash(b"0"), leaf_hash(b"1"))
    True
    >>> root(stored, 0) == EMPTY_ROOT
    True
    """
    return subtree_hash(stored, 0, size)


def inclusion_proof(stored: Stored, index: int, size: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``size`` (RFC 9162 PATH), leaf first.

    >>> stored = _example(7)
    >>> proof = inclusion_proof(stored, 5, 7)
    >>> len(proof), verify_inclusion(5, 7, leaf_hash(b"5"), proof, root(stored, 7))
    (3, True)
    >>> verify_inclusion(4, 7, leaf_hash(b"5"), proof, root(stored, 7))
    False

    Raises:
        ValueError: ``index`` is not below ``size``.
    """
    if not 0 <= index < size:
        raise ValueError(f"index {index} is not in a tree of size {size}")
    path: list[bytes] = []
    lo, hi, m = 0, size, index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            path.append(subtree_hash(stored, lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree_hash(stored, lo, lo + k))
            lo, m = lo + k, m - k
    path.reverse()
    return path


def consistency_proof(stored: Stored, old: int, new: int) -> list[bytes]:
    """The proof that the tree of size ``old`` is a prefix of that of size ``new`` (RFC 9162
    SUBPROOF); empty when ``old`` is 0 or equals ``new``.

    >>> stored = _example(7)
    >>> proof = consistency_proof(stored, 3, 7)
    >>> verify_consistency(3, 7, root(stored, 3), root(stored, 7), proof)
    True
    >>> verify_consistency(3, 7, root(stored, 4), root(stored, 7), proof)
    False
    >>> consistency_proof(stored, 0, 7), consistency_proof(stored, 7, 7)
    ([], [])

    Raises:
        ValueError: ``old`` exceeds ``new``.
    """
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from size {old} to {new}")
    if old == 0 or old == new:
        return []
    proof: list[bytes] = []
    lo, hi, m, whole = 0, new, old, True
    while True:
        n = hi - lo
        if m == n:
            if not whole:
                proof.append(subtree_hash(stored, lo, hi))
            break
        k = _split(n)
        if m <= k:
            proof.append(subtree_hash(stored, lo + k, hi))
            hi = lo + k
        else:
            proof.append(subtree_hash(stored, lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    proof.reverse()
    return proof


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes],
                     root_hash: bytes) -> bool:
    """Whether ``proof`` shows ``leaf`` at ``index`` in the tree of ``size`` with ``root_hash``."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root_hash


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """Whether ``proof`` shows the tree ``(old, old_root)`` is a prefix of ``(new, new_root)``."""
    if old > new or old < 0:
        return False
    if old == new:
        return not proof and old_root == new_root
    if old == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if old & (old - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


class Frontier:
    """The right edge of a growing tree: one hash per set bit of its size, largest first.

    Appending a leaf yields every complete subtree it completes, to be stored.

    >>> f, out = Frontier(), []
    >>> for i in range(4):
    ...     f.append(leaf_hash(bytes([i])), out)
    >>> [(level, idx) for level, idx, _ in out]
    [(0, 0), (0, 1), (1, 0), (0, 2), (0, 3), (1, 1), (2, 0)]
    >>> f.size, len(f.hashes), f.root() == out[-1][2]
    (4, 1, True)
    """

    def __init__(self, size: int = 0, hashes: list[bytes] | None = None) -> None:
        self.size = size
        self.hashes = list(hashes or [])

    @classmethod
    def load(cls, stored: Stored, size: int) -> Frontier:
        """The frontier of the stored tree of ``size`` leaves."""
        hashes, pos = [], 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                hashes.append(stored(level, pos >> level))
                pos += 1 << level
        return cls(size, hashes)

    def append(self, leaf: bytes, out: list[tuple[int, int, bytes]]) -> None:
        """Add ``leaf``; append each completed ``(level, index, hash)`` to ``out``."""
        idx, h, level = self.size, leaf, 0
        out.append((0, idx, h))
        while idx & 1:
            h = node_hash(self.hashes.pop(), h)
            idx >>= 1
            level += 1
            out.append((level, idx, h))
        self.hashes.append(h)
        self.size += 1

    def root(self) -> bytes:
        """The root hash at the current size."""
        if not self.hashes:
            return EMPTY_ROOT
        h = self.hashes[-1]
        for p in reversed(self.hashes[:-1]):
            h = node_hash(p, h)
        return h


def _example(size: int) -> Stored:
    """The stored hashes of a tree over the leaves ``b"0"``, ``b"1"``… (for the examples)."""
    f, out = Frontier(), list[tuple[int, int, bytes]]()
    for i in range(size):
        f.append(leaf_hash(str(i).encode()), out)
    nodes = {(level, idx): h for level, idx, h in out}
    return lambda level, idx: nodes[(level, idx)]
