"""The ledger: every exchange, refusal and governance change on a verifiable Merkle log.

Public surface used by the protocol, the query service and the CLI: :class:`Ledger`
(append, checkpoints, proofs), :class:`Receipt`, :mod:`entry` (what entries say),
:class:`Witness` (cosigning peers' logs) and :mod:`verify` (checking logs and receipts).

Inside, one module per job: :mod:`~zhongshu.ledger.appender` (entries in, through the
:mod:`~zhongshu.ledger.sequencer` process), :mod:`~zhongshu.ledger.publisher` (signed
checkpoints), :mod:`~zhongshu.ledger.witness_client` (cosignatures from peers),
:mod:`~zhongshu.ledger.store` (the store interface and its SQLite file; all SQL is there),
:mod:`~zhongshu.ledger.memory` (an in-memory store), :mod:`~zhongshu.ledger.layout` (tile
arithmetic), :mod:`~zhongshu.ledger.merkle`, :mod:`~zhongshu.ledger.note` and
:mod:`~zhongshu.ledger.canonical` (the formats).
"""

from zhongshu.ledger import entry
from zhongshu.ledger.entry import iso_ms
from zhongshu.ledger.log import Ledger, origin_of
from zhongshu.ledger.receipt import Receipt
from zhongshu.ledger.witness import Witness

__all__ = ["Ledger", "Receipt", "Witness", "entry", "iso_ms", "origin_of"]
