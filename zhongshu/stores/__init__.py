"""The hub's own state, behind small interfaces: metadata, nonces, sessions, rate
counters, lookup counts.

Each interface (``zhongshu.stores.base``) has an embedded SQLite implementation
(``zhongshu.stores.sqlite``) and an in-memory one (``zhongshu.stores.memory``); both pass the
same contract suite (``tests/stores/test_contract.py``), so a further implementation (the
PostgreSQL store of a scaled-out hub) is one more class, not a rewrite. The ledger's store has
the same shape in ``zhongshu.ledger``. Only the composition root (``zhongshu.node``) chooses
and builds them; everything else receives them.
"""

from zhongshu.stores.base import (
    LookupCounts,
    MetadataStore,
    NonceStore,
    RateCounters,
    SessionStore,
)

__all__ = ["LookupCounts", "MetadataStore", "NonceStore", "RateCounters", "SessionStore"]
