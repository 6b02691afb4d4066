"""The receipt of one recorded entry: which ledger, which index, which leaf hash."""

from __future__ import annotations

from dataclasses import dataclass

from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12


class ReceiptJSON(TypedDict):
    """A receipt as the protocol sends it (the one definition of its wire form: the
    protocol's OpenAPI schema is this type)."""

    ledger: str
    """the ledger's origin"""
    index: int
    """the index of the exchange's entry"""
    entry_hash: str
    """hex RFC 9162 leaf hash of the entry"""


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

    def to_dict(self) -> ReceiptJSON:
        """The receipt as the protocol sends it: ``ledger``, ``index``, ``entry_hash``."""
        return {"ledger": self.ledger, "index": self.index, "entry_hash": self.leaf.hex()}
