"""Each peer's catalog, fetched every ``refresh_s`` and kept.

The last valid catalog of a peer is kept while the peer is unreachable (its datasets stay in
this hub's catalog), and marked stale once it expires: its datasets then answer
``peer_unavailable`` ("stale catalog") until a fresh one arrives. A catalog that does not
verify (signed by another key, naming datasets outside the peer's namespace, malformed) is
refused and logged; the last valid one stays in force until it expires. ``on_change`` is
called (peer name, its offer) whenever the datasets a peer offers change, so that a
district's new dataset or grant appears here within one refresh, without a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from zhongshu.errors import PeerUnavailable, ZhongshuError
from zhongshu.federation.catalogs import Offer, verify_catalog
from zhongshu.federation.peers import Peer, Peers

log = logging.getLogger("zhongshu.federation")


@dataclass
class PeerCatalog:
    """What this hub knows of one peer's catalog."""

    offer: Offer | None = None
    fetched_at: float | None = None  # wall clock of the last valid catalog
    error: str = ""  # why the last fetch failed ("" after a good one)
    failing_since: float | None = None

    def stale(self, now: float | None = None) -> bool:
        """Whether no valid catalog is in force (never fetched, or expired)."""
        return self.offer is None or self.offer.stale(time.time() if now is None else now)


OnChange = Callable[[str, Offer | None], None]


class CatalogSync:
    """Fetches every peer's catalog (:meth:`refresh`, or every ``refresh_s`` in a thread
    once :meth:`start` ed)."""

    def __init__(self, peers: Peers, on_change: OnChange | None = None) -> None:
        self.peers = peers
        self.settings = peers.settings
        self.on_change = on_change
        self.state: dict[str, PeerCatalog] = {p.name: PeerCatalog() for p in peers}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def refresh(self, only: str | None = None) -> None:
        """Fetch each peer's catalog once (or only ``only``'s)."""
        for peer in self.peers:
            if only is None or peer.name == only:
                self._refresh(peer)

    def _refresh(self, peer: Peer) -> None:
        st = self.state[peer.name]
        now = time.time()
        try:
            doc = peer.catalog()
            offer = verify_catalog(doc, Ed25519PublicKey.from_public_bytes(
                peer.config.key_bytes), hub=peer.name, for_=self.settings.member,
                namespace=peer.config.namespace, now=now)
            for d in offer.datasets:  # a city peer (no namespace) names no other peer's
                if self.settings.owner_of(d.config.name) is not peer.config:
                    raise PeerUnavailable(f"the catalog of `{peer.name}` is refused: it "
                                          f"names `{d.config.name}`, another peer's",
                                          hub=peer.name)
        except ZhongshuError as e:
            with self._lock:
                st.error = e.message
                st.failing_since = st.failing_since or now
            lying = "refused" in e.message or "not signed" in e.message
            level = logging.ERROR if lying else logging.WARNING
            log.log(level, "catalog of %s: %s", peer.name, e.message)
            return
        with self._lock:
            old = st.offer
            if old is not None and offer.issued_at < old.issued_at:
                st.error = "an older catalog than the one in force was refused (a replay)"
                return
            st.offer, st.fetched_at, st.error, st.failing_since = offer, now, "", None
        if self.on_change is not None and (old is None or old.datasets != offer.datasets):
            self.on_change(peer.name, offer)

    def offer(self, peer: str) -> Offer | None:
        """The catalog of ``peer`` in force (possibly stale), or None."""
        return self.state[peer].offer

    def check_fresh(self, peer: str) -> Offer:
        """The peer's catalog, if in force and not stale.

        Raises:
            PeerUnavailable: none fetched yet, or expired, naming the peer.
        """
        st = self.state[peer]
        if st.offer is None:
            raise PeerUnavailable(f"peer hub `{peer}` is unavailable: no catalog received "
                                  "from it yet", hub=peer)
        if st.stale():
            at = time.strftime("%H:%M:%S", time.localtime(st.offer.expires_at))
            raise PeerUnavailable(f"peer hub `{peer}` is unavailable: stale catalog (expired "
                                  f"at {at})", hub=peer)
        return st.offer

    def start(self) -> None:
        """Fetch every peer now, then every ``refresh_s`` in a daemon thread."""
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.refresh()
                except Exception:  # a peer's bad day never stops the others' refreshes
                    log.exception("catalog refresh failed")
                self._stop.wait(self.settings.refresh_s)

        self._thread = threading.Thread(target=loop, name="zhongshu-federation-sync",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the refresh thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def report(self) -> dict[str, str]:
        """Peer name → ``ok``, ``stale`` or ``down: REASON`` (for the operators' health)."""
        out = {}
        for name, st in self.state.items():
            if st.stale():
                out[name] = "stale" if st.offer is not None else "down: no catalog yet"
            elif st.error:
                out[name] = "degraded: last refresh failed"
            else:
                out[name] = "ok"
        return out
