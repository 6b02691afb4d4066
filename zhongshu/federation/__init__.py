"""Federation: district hubs under a city hub, reached through the protocol only.

A hub knows its peers by name, URL and Ed25519 public key (``[[federation.peers]]``,
:mod:`zhongshu.config.federation`). One module per job:

* :mod:`~zhongshu.federation.keys` — this hub's federation key (signs its requests to peers
  and the catalogs it publishes);
* :mod:`~zhongshu.federation.catalogs` — the signed, expiring catalog a hub offers a peer:
  its form, signing and the receiver's checks (a peer's catalog is data, never instructions);
* :mod:`~zhongshu.federation.breaker` — a per-peer circuit breaker;
* :mod:`~zhongshu.federation.peers` — one peer reached through the protocol's client: signed
  requests, time limits, its refusals forwarded naming it, its failures ``peer_unavailable``;
* :mod:`~zhongshu.federation.sync` — each peer's catalog fetched every ``refresh_s``, the
  last valid one kept while the peer is unreachable, marked stale once it expires.

It imports the client, config and errors only (``tests/test_layers.py``): the query layer
runs remote datasets with it, and the protocol publishes this hub's catalogs with its
signing half.
"""

from zhongshu.federation.breaker import Breaker
from zhongshu.federation.catalogs import (
    CATALOG_PATH,
    Offer,
    OfferedDataset,
    sign_catalog,
    verify_catalog,
)
from zhongshu.federation.keys import load_key, public_key_b64
from zhongshu.federation.peers import Peer, PeerAnswer, Peers
from zhongshu.federation.sync import CatalogSync, PeerCatalog

__all__ = ["CATALOG_PATH", "Breaker", "CatalogSync", "Offer", "OfferedDataset", "Peer",
           "PeerAnswer", "PeerCatalog", "Peers", "load_key", "public_key_b64", "sign_catalog",
           "verify_catalog"]
