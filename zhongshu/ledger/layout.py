"""Where each complete-subtree hash is kept: tiles of 256 hashes, their keys and paths.

Pure arithmetic shared by every store and by the tile endpoints. The hashes of one level
are cut into tiles of :data:`TILE`; tile ``n`` of level ``level`` has the key ``level << 48 |
n`` (one integer, so a store can keep tiles in one table or map), and the tiles of levels
0, 8, 16… are exactly the C2SP tlog-tiles served to verifiers (c2sp.org/tlog-tiles).
"""

from __future__ import annotations

import re

TILE = 256  # hashes per tile
HASH = 32  # bytes per hash
FULL = TILE * HASH  # bytes of a full tile
LEVEL_SHIFT = 48  # a tile key is ``level << 48 | n``: 2^48 tiles of a level is 2^56 leaves
TLOG_HEIGHT = 8  # a c2sp tile of level L holds the hashes of subtrees of height 8·L

_TILE_PATH = re.compile(r"^((?:x\d{3}/)*\d{3})(?:\.p/(\d{1,3}))?$")


def tile_key(level: int, n: int) -> int:
    """The key of tile ``n`` of ``level``.

    >>> tile_key(0, 3), tile_key(1, 0) == 1 << 48
    (3, True)
    """
    return level << LEVEL_SHIFT | n


def key_of(level: int, idx: int) -> int:
    """The key of the tile holding the hash of subtree ``(level, idx)``.

    >>> key_of(0, 255), key_of(0, 256), key_of(8, 513) == tile_key(8, 2)
    (0, 1, True)
    """
    return tile_key(level, idx // TILE)


def position(idx: int) -> int:
    """Where the hash of subtree ``idx`` (of any level) sits in its tile, 0…255.

    >>> position(0), position(257)
    (0, 1)
    """
    return idx % TILE


def offset(idx: int) -> int:
    """The byte offset of the hash of subtree ``idx`` in its tile's blob.

    >>> offset(1), offset(256 + 2)
    (32, 64)
    """
    return position(idx) * HASH


def level_of(key: int) -> int:
    """The level of the tile with ``key``.

    >>> level_of(tile_key(8, 5))
    8
    """
    return key >> LEVEL_SHIFT


def tile_path(level: int, n: int, width: int = TILE) -> str:
    """The c2sp.org/tlog-tiles path of a tile: ``tile/L/x001/x234/067[.p/W]``.

    >>> tile_path(0, 1234067)
    'tile/0/x001/x234/067'
    >>> tile_path(1, 5, 17)
    'tile/1/005.p/17'
    """
    digits = f"{n:03d}"
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i:i + 3] for i in range(0, len(digits), 3)]
    path = "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])
    return f"tile/{level}/{path}" + (f".p/{width}" if width < TILE else "")


def parse_tile_path(rest: str) -> tuple[int, int]:
    """``(n, width)`` of the part of a tile path after ``tile/L/``.

    >>> parse_tile_path("x001/x234/067"), parse_tile_path("005.p/17")
    ((1234067, 256), (5, 17))

    Raises:
        ValueError: it is not ``[xNNN/…]NNN[.p/W]``, or the width is not 1 to 256.
    """
    m = _TILE_PATH.match(rest)
    if not m:
        raise ValueError("no such tile; paths read tile/<L>/<N>[.p/<W>] (c2sp.org/tlog-tiles)")
    n = int(m.group(1).replace("x", "").replace("/", ""))
    width = int(m.group(2)) if m.group(2) else TILE
    if not 1 <= width <= TILE:
        raise ValueError("a partial tile's width is 1 to 255")
    return n, width


def tiles_of(size: int) -> int:
    """How many level-0 tiles hold the leaves of a tree of ``size`` (the last may be partial).

    >>> tiles_of(0), tiles_of(256), tiles_of(257)
    (0, 1, 2)
    """
    return (size + TILE - 1) // TILE
