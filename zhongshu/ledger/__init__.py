"""The ledger: every exchange, refusal and governance change on a verifiable Merkle log.

Public surface used by the protocol, the query service and the CLI: :class:`Ledger`
(append, checkpoints, proofs), :class:`Receipt`, :mod:`entry` (what entries say),
:class:`Witness` (cosigning peers' logs), :mod:`verify` (checking logs and receipts), and the
published formats anyone checks offline — :mod:`canonical` (RFC 8785, the hashed form of
answers and entries), :mod:`merkle` (RFC 9162 hashes and proofs), :mod:`note` (C2SP signed
checkpoints) and :mod:`layout` (c2sp.org/tlog-tiles paths).

Inside, one module per job: :mod:`~zhongshu.ledger.appender` (entries in, through the
:mod:`~zhongshu.ledger.sequencer` process), :mod:`~zhongshu.ledger.publisher` (signed
checkpoints), :mod:`~zhongshu.ledger.witness_client` (cosignatures from peers),
:mod:`~zhongshu.ledger.store` (the store interface and its SQLite file; all SQL is there),
:mod:`~zhongshu.ledger.memory` (an in-memory store), :mod:`~zhongshu.ledger.layout` (tile
arithmetic), :mod:`~zhongshu.ledger.merkle`, :mod:`~zhongshu.ledger.note` and
:mod:`~zhongshu.ledger.canonical` (the formats).
"""

from zhongshu.ledger import canonical, entry, layout, merkle, note, verify
from zhongshu.ledger.entry import iso_ms
from zhongshu.ledger.log import Ledger, origin_of
from zhongshu.ledger.receipt import Receipt, ReceiptJSON
from zhongshu.ledger.witness import Witness

__all__ = ["Ledger", "Receipt", "ReceiptJSON", "Witness", "canonical", "entry", "iso_ms",
           "layout", "merkle", "note", "origin_of", "verify"]
