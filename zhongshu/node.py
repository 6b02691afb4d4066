"""The composition root: the parts of one hub process, built and wired once.

``Node.open(city)`` chooses the stores, opens the ledger and points the metadata store's
change hook at it, builds the catalog and — when first asked — the query service, the stream
service and the protocol application. Everything below receives its parts from here; nothing
but the CLI and the tests imports this module (``tests/test_layers.py`` checks it)::

    with Node.open("demo-city", serve=True) as node:
        app = node.app()        # the protocol (FastAPI), over node.query and node.ledger

The embedded stores are SQLite files in the city's ``state/`` folder (metadata, and the
pseudonym lookups a day's budgets count) and memory (nonces, sessions, rate counters: they
need not outlive one process); ``Stores.memory()`` keeps everything in memory. One setting
(``[store] url`` in ``city.toml``, or ``ZHONGSHU_STORE_URL``) puts every store, and the
ledger, in one PostgreSQL database instead, shared by every replica of the hub
(``Stores.postgres``); this module is the one place that choice is made.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from zhongshu.catalog.catalog import Catalog
from zhongshu.config import City, load_city
from zhongshu.config.streams import check_windows_reader
from zhongshu.errors import ConfigError
from zhongshu.stores import LookupCounts, MetadataStore, NonceStore, RateCounters, SessionStore
from zhongshu.stores.memory import (
    MemoryLookupCounts,
    MemoryMetadataStore,
    MemoryNonceStore,
    MemoryRateCounters,
    MemorySessionStore,
)
from zhongshu.stores.sqlite import SqliteLookupCounts, SqliteMetadataStore

if TYPE_CHECKING:
    from fastapi import FastAPI

    from zhongshu.federation import CatalogSync, Offer, Peers
    from zhongshu.ledger import Ledger
    from zhongshu.protocol.pgwire import Endpoint
    from zhongshu.query.service import QueryService
    from zhongshu.stores.postgres import Database
    from zhongshu.streams.service import StreamService


def store_url(city: City) -> str:
    """The URL of the city's PostgreSQL store, its password read from ``[store]
    password_secret`` when one is named; empty for the embedded SQLite files. (A secret:
    shown nowhere — name the store by ``zhongshu.stores.postgres.label_of``.)

    Raises:
        ConfigError: the password's secret is not set.
    """
    settings = city.store
    if not settings.url or not settings.password_secret:
        return settings.url
    import psycopg
    from psycopg.conninfo import make_conninfo

    from zhongshu.config import read_secret

    try:
        return make_conninfo(settings.url, password=read_secret(city.root,
                                                                settings.password_secret))
    except psycopg.ProgrammingError:  # its text quotes what does not parse: never shown
        raise ConfigError("[store] url does not parse: write it as "
                          "postgresql://user@host:port/database",
                          path=str(city.root / "city.toml")) from None


def stream_service(city: City, url: str | None = None) -> StreamService:
    """The stream service of ``city`` on its store (or on the store at ``url``): with a
    PostgreSQL store, folding while this process holds the streams' lease there.

    Raises:
        ConfigError: the store's password secret is not set.
    """
    from zhongshu.streams.service import StreamService

    url = store_url(city) if url is None else url
    if not url:
        return StreamService(city)
    from zhongshu.ledger.lease import STREAMS, Lease

    return StreamService(city, url, Lease(url, STREAMS))


@dataclass
class Stores:
    """The hub's own state, one store per kind (and, for PostgreSQL, the database they
    share, which the ledger uses too)."""

    metadata: MetadataStore
    nonces: NonceStore
    sessions: SessionStore
    rates: RateCounters
    lookups: LookupCounts
    database: Database | None = None

    @classmethod
    def open(cls, city: City) -> Stores:
        """The stores ``city`` is set up for: :meth:`postgres` when it names a store URL,
        :meth:`embedded` otherwise.

        Raises:
            StoreUnavailable: the PostgreSQL store cannot be reached.
            StoreOutdated: its schema is older than this code (``zhongshu db upgrade``).
        """
        url = store_url(city)
        if url:
            return cls.postgres(url, pool_size=city.store.pool_size)
        return cls.embedded(city)

    @classmethod
    def postgres(cls, url: str, *, pool_size: int = 16) -> Stores:
        """Every store in one PostgreSQL database, whose schema must be current (it is
        never migrated here).

        Raises:
            StoreUnavailable: the database cannot be reached.
            StoreOutdated: its schema is older than this code.
        """
        from zhongshu.stores import postgres, schema

        db = postgres.Database(url, max_size=pool_size)
        try:
            schema.require_current(db)
        except BaseException:
            db.close()
            raise
        return cls(postgres.PostgresMetadataStore(db), postgres.PostgresNonceStore(db),
                   postgres.PostgresSessionStore(db), postgres.PostgresRateCounters(db),
                   postgres.PostgresLookupCounts(db), database=db)

    @classmethod
    def embedded(cls, city: City) -> Stores:
        """Metadata in ``state/hub.db`` (shared with the CLI and other processes on the city
        folder); pseudonym lookups in ``state/lookups.db`` (a day's budget outlives a
        restart); nonces, sessions and rate counters in this process's memory."""
        return cls(SqliteMetadataStore(city.state_dir / "hub.db"), MemoryNonceStore(),
                   MemorySessionStore(), MemoryRateCounters(),
                   SqliteLookupCounts(city.state_dir / "lookups.db"))

    @classmethod
    def memory(cls) -> Stores:
        """Everything in memory (nothing is written to the city folder's state)."""
        return cls(MemoryMetadataStore(), MemoryNonceStore(), MemorySessionStore(),
                   MemoryRateCounters(), MemoryLookupCounts())

    def close(self) -> None:
        """Close every store."""
        for store in (self.metadata, self.nonces, self.sessions, self.rates, self.lookups):
            store.close()
        if self.database is not None:
            self.database.close()


def _ledger_store(stores: Stores) -> Any:
    """The ledger's store beside ``stores``: in their PostgreSQL database (sharing its
    connections), or None for the embedded file (``state/ledger.db``)."""
    if stores.database is None:
        return None
    from zhongshu.ledger.postgres import PostgresLedgerStore

    return PostgresLedgerStore(stores.database.url, pool=stores.database.pool,
                               connect=stores.database.connection)


class Node:
    """The parts of one hub process: stores, ledger, catalog, query, streams, protocol.

    Build it with :meth:`open`; close it (or use it as a context manager) to stop the
    health monitor, the engine, the streams and the ledger, in that order.
    """

    def __init__(self, city: City, stores: Stores, ledger: Ledger | None, *,
                 monitor: bool = False, serve: bool = False) -> None:
        self.city = city
        self.stores = stores
        self.ledger = ledger
        #: whether the sources are probed in the background
        self.monitoring = monitor
        self._serve = serve
        self._metrics: Any = None
        self._before: Node | None = None  # the node a reload replaces (its workers)
        #: the metrics of the last application built (:meth:`app`)
        self.metrics: Any = None
        if ledger is not None:
            stores.metadata.on_change = ledger.change_recorder()
        self.catalog = Catalog(city, stores.metadata)

    @classmethod
    def open(cls, city: City | str | os.PathLike[str], *, stores: Stores | None = None,
             serve: bool = False, monitor: bool | None = None) -> Node:
        """The parts of a hub for ``city`` (a loaded city, or its folder).

        Args:
            stores: the stores to use (default: :meth:`Stores.open`: the city's setting).
            serve: a serving hub — the ledger's sequencer and publisher run, and the streams
                the city declares are ingested (a command-line tool passes False: it records
                governance changes on the ledger without serving it).
            monitor: probe the sources in the background (default: when serving).

        Raises:
            ConfigError: the city's configuration is invalid.
            StoreUnavailable: the city's PostgreSQL store cannot be reached.
            StoreOutdated: its schema is older than this code (``zhongshu db upgrade``).
        """
        if not isinstance(city, City):
            city = load_city(Path(city))
        stores = stores or Stores.open(city)
        ledger = None
        if city.ledger.enabled:
            from zhongshu.ledger import Ledger

            ledger = Ledger.open(city, start=serve, store=_ledger_store(stores))
        node = cls(city, stores, ledger, monitor=serve if monitor is None else monitor,
                   serve=serve)
        if serve:
            check_windows_reader(city)
            _ = node.streams  # the streams' window tables exist before the catalog reads them
        return node

    def adopt(self, old: Node) -> None:
        """Take over ``old``'s streams and metrics (a reload: ``zhongshu.reload``), so that
        subscriptions and counters run on; this node then owns them. Its DuckDB workers are
        shared too when this node's sources are exactly ``old``'s."""
        self.__dict__["streams"] = old.streams
        self._metrics = old.metrics
        self._before = old

    @cached_property
    def streams(self) -> StreamService | None:
        """The city's stream service (None when it declares no streams, is not served, or
        leaves them to another replica: ``[hub] ingest_streams = false``)."""
        if not self._serve or not self.city.hub.ingest_streams or \
                not any(m.streams for m in self.city.members.values()):
            return None
        return stream_service(self.city)

    @cached_property
    def query(self) -> QueryService:
        """The query service (built on first use: it checks every dataset against its source
        and starts the DuckDB workers)."""
        from zhongshu.policy.identity import Caller
        from zhongshu.query.service import QueryService

        streams = self.streams
        before = self._before.__dict__.get("query") if self._before is not None else None
        fed = self.federation
        service = QueryService(self.catalog, self.stores.rates, monitor=self.monitoring,
                               lookups=self.stores.lookups, federation=fed,
                               workers=None if before is None else before.executor.engine)
        self._before = None  # the old node is retired on its own schedule
        if fed is not None:
            fed[1].on_change = self._remote_changed
            if self._serve:
                fed[1].start()
        if streams is not None:
            streams.load_lookups(lambda owner, sql: service.run(
                Caller(service.catalog.members[owner]), sql,
                "stream-enrichment").table.to_pylist())
        return service

    @cached_property
    def federation(self) -> tuple[Peers, CatalogSync] | None:
        """This hub's peers and their catalogs' sync (None: no ``[federation]``). Each
        peer's key from ``city.toml`` is registered for its member here (kind ``hub``), so
        its signed requests verify; this hub's own key is made in ``[federation] key``."""
        fed = self.city.federation
        if fed is None:
            return None
        from zhongshu.federation import CatalogSync, Peers, load_key
        from zhongshu.federation.keys import key_id
        from zhongshu.policy.identity import register_key

        for peer in fed.peers:
            if self.stores.metadata.key(key_id(peer.name, peer.key_bytes)) is None:
                register_key(self.catalog, peer.name, peer.key_bytes, actor="federation")
        peers = Peers(fed, load_key(self.city.root / fed.key), self.peer_transport)
        return peers, CatalogSync(peers)

    #: how peers are reached (tests: an in-process transport per peer); None: the network
    peer_transport: Any = None

    def _remote_changed(self, peer: str, offer: Offer | None) -> None:
        """A peer's offered datasets changed: they replace its remote datasets in the
        catalog, and the grants (and cached plans) are rebuilt over them."""
        configs = [o.config for o in offer.datasets] if offer is not None else []
        # a dataset the peer withdrew stays, so that asking for it says the peer refused
        # (403 naming it) rather than that it never existed
        offered = {c.name for c in configs}
        configs += [d.config for d in self.catalog.datasets.values()
                    if self.catalog.is_remote(d) and d.owner == peer and d.name not in offered]
        refused = self.catalog.set_remote(peer, configs)
        if refused:
            import logging

            logging.getLogger("zhongshu.federation").error(
                "peer %s offers datasets named like this hub's own: refused %s", peer,
                ", ".join(refused[:5]))
        self._rebuild_unions()
        service = self.__dict__.get("query")
        if service is not None:
            service.refresh_grants(force=True)

    def _rebuild_unions(self) -> None:
        """Each union dataset over its parts offered now (``[[federation.unions]]``)."""
        from zhongshu.catalog.remote import union_config

        fed = self.city.federation
        if fed is None:
            return
        for u in fed.unions:
            every = {}
            offered = {}
            for part in u.parts:
                holder = fed.owner_of(part)
                assert holder is not None  # checked when the city loaded
                every[holder.namespace] = part
                d = self.catalog.datasets.get(part)
                if d is not None and self.catalog.is_remote(d):
                    offered[holder.namespace] = d.config
            config = union_config(u.name, u.column, offered, u.title, u.description,
                                  u.listed, every) if offered else None
            self.catalog.set_union(u.name, u.owner, config,
                                   {part: ns for ns, part in every.items()})

    def app(self, cockpit: bool = False, scenarios: str | None = None,
            url: str | None = None,
            config: Callable[[], dict[str, Any]] | None = None) -> FastAPI:
        """The protocol application over this node's query service and ledger; ``cockpit``
        also serves the cockpit, its panels' SQL checked by the firewall as they load;
        ``scenarios`` (this hub's URL, which the scenarios call back) also serves the
        installed scenarios whose member has a token, every route behind the scenario door
        (``protocol.callers``). ``zhongshu serve`` builds it with both. ``url`` is this
        hub's own address (default: ``scenarios``), against which an identity provider's
        ``jwks_url`` given as a path is resolved; a city with the demo's identity provider
        (``demo.idp``) also serves its public keys. ``config`` reports the configuration's
        state (``zhongshu.reload``) in the operators' health.

        Raises:
            ConfigError: a panel does not validate, or a scenario member's ``[[callers]]``
                names a service its scenario does not offer.
        """
        from zhongshu.protocol.app import create_app

        app = create_app(self.query, self.ledger, sessions=self.stores.sessions,
                         nonces=self.stores.nonces, rates=self.stores.rates,
                         own_url=url or scenarios,
                         streams=None if self.streams is None else self.streams.health,
                         metrics=self._metrics, config=config)
        self.metrics = app.state.metrics
        from zhongshu.demo import idp

        if idp.key_path(self.city.root).exists():
            root = self.city.root

            @app.get(idp.JWKS_PATH, tags=["demo identity provider"])
            def demo_jwks() -> dict[str, Any]:
                """The demo identity provider's public keys (JWKS), as a real provider
                publishes them (public)."""
                return idp.jwks(root)
        if cockpit:
            from zhongshu.cockpit import mount
            from zhongshu.policy.owners import panel_checker

            service = self.query
            mount(app, self.city, panel_checker(self.catalog),
                  lambda: service.catalog.datasets.keys())
        if scenarios is not None:
            from zhongshu.scenarios import mount as mount_scenarios

            app.state.scenarios = mount_scenarios(app, scenarios, self.city.root,
                                                  app.state.scenario_door.guard)
        return app

    def wire(self, app: FastAPI) -> Endpoint:
        """The PostgreSQL wire endpoint over the same query service, ledger, token check and
        metrics as ``app`` (:meth:`app`), with TLS from ``[hub] pg_tls_cert``/``pg_tls_key``
        or a self-signed certificate made once in ``state/``."""
        from zhongshu.protocol.pgwire import Endpoint, tls

        hub = self.city.hub
        if hub.pg_tls_cert:
            cert = self.city.root / hub.pg_tls_cert
            key = self.city.root / (hub.pg_tls_key or hub.pg_tls_cert)
        else:
            cert, key = self.city.state_dir / "pg-tls.crt", self.city.state_dir / "pg-tls.key"
            tls.ensure_self_signed(cert, key, ["localhost", "127.0.0.1",
                                               *([hub.origin] if hub.origin else [])])
        return Endpoint(self.query, self.ledger, app.state.authn, app.state.metrics,
                        tls.server_context(cert, key))

    def close_query(self) -> None:
        """Close the query service alone (a node replaced by a reload: its stores, ledger and
        streams live on in the node that replaced it). Closing twice does nothing."""
        service = self.__dict__.pop("query", None)
        if service is not None:
            service.close()
        fed = self.__dict__.pop("federation", None)
        if fed is not None:
            fed[1].stop()
            fed[0].close()

    def close(self) -> None:
        """Stop and close every part this node built."""
        parts: dict[str, Any] = self.__dict__
        self.close_query()
        if parts.get("streams") is not None:
            parts["streams"].stop()
        if self.ledger is not None:
            if self._serve:
                self.ledger.close()  # waits for the sequencer, signs a last checkpoint
            else:
                self.ledger.store.close()  # a tool's ledger: its appends are durable already
        self.stores.close()

    def __enter__(self) -> Node:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
