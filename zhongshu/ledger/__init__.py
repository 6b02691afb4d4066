"""The ledger: every exchange, refusal and governance change on a verifiable Merkle log.

Public surface used by the protocol, the query service and the CLI: :class:`Ledger`
(append, checkpoints, proofs), :class:`Receipt`, :mod:`entry` (what entries say),
:class:`Witness` (cosigning peers' logs) and :mod:`verify` (checking logs and receipts).
"""

from zhongshu.ledger.log import Ledger, Receipt, origin_of
from zhongshu.ledger.witness import Witness

__all__ = ["Ledger", "Receipt", "Witness", "origin_of"]
