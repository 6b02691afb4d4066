"""The receipt of one recorded entry: which ledger, which index, which leaf hash."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where an exchange was recorded: the ledger's origin, the entry's index and leaf hash.

    >>> r = Receipt("zhongshu/hz", 7, bytes(32))
    >>> r.to_dict()["index"], r.entry_hash[:8]
    (7, '00000000')
    """

    ledger: str
    index: int
    leaf: bytes

    @property
    def entry_hash(self) -> str:
        """Hex RFC 9162 leaf hash of the entry."""
        return self.leaf.hex()

    def to_dict(self) -> dict[str, Any]:
        """The receipt as the protocol sends it: ``ledger``, ``index``, ``entry_hash``."""
        return {"ledger": self.ledger, "index": self.index, "entry_hash": self.leaf.hex()}
