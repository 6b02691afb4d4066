"""The hub protocol, v1: a FastAPI application over the query service.

The OpenAPI document at ``/v1/openapi.json`` is the protocol's full description and agrees
with ``PROTOCOL.md``. Every error is ``{"error": {"code", "message"}, "receipt"?}``
(``protocol.handlers``). Who calls is decided by ``protocol.auth``; the routes live in
``protocol.routes``, one module per concern; bodies are ``protocol.models``. The door of the
scenarios' routes (``protocol.callers``) is kept in ``app.state.scenario_door`` for the
scenarios' mount.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

import zhongshu
from zhongshu.ledger import Ledger
from zhongshu.policy.identity import Authenticator
from zhongshu.protocol import contract, ngsild
from zhongshu.protocol.auth import Authentication
from zhongshu.protocol.callers import ScenarioDoor
from zhongshu.protocol.handlers import add_error_handlers
from zhongshu.protocol.metrics import CountRequests, Metrics
from zhongshu.protocol.people import IdTokens, People
from zhongshu.protocol.routes import (
    Parts,
    catalog,
    federation,
    grants,
    hub,
    identity,
    probes,
    query,
)
from zhongshu.protocol.routes.ledger import add_ledger_routes
from zhongshu.protocol.routes.me import add_me_routes
from zhongshu.protocol.routes.subscribe import add_subscribe_route
from zhongshu.protocol.sessions import Sessions
from zhongshu.protocol.signatures import PublicKeyOf, Verifier
from zhongshu.query.service import QueryService
from zhongshu.stores import NonceStore, RateCounters, SessionStore


def create_app(service: QueryService, ledger: Ledger | None, *, sessions: SessionStore,
               nonces: NonceStore, rates: RateCounters, own_url: str | None = None,
               streams: Callable[[], dict[str, dict[str, Any]]] | None = None,
               metrics: Metrics | None = None,
               config: Callable[[], dict[str, Any]] | None = None) -> FastAPI:
    """The protocol application serving ``service``.

    Every answer to ``/v1/query`` and every refusal of a known member is recorded on
    ``ledger`` (None: the city runs without one) before it is sent. The parts are built and
    closed by their owner (``zhongshu.node.Node``), not here; ``rates`` counts scenario
    callers' calls. When the city lets people sign in (``[people]``), ID tokens are
    checked against its provider's keys (a ``jwks_url`` that is a path is resolved against
    ``own_url``, this hub's own address) and the people's routes (``/v1/me/…``) are served.
    ``streams`` reports the ingested streams' states and ``config`` the configuration's
    (``zhongshu.reload``), both in health's detail for operators; ``metrics`` carries the
    counters of the application this one replaces (default: new counters).
    """
    app = FastAPI(title="Zhongshu hub protocol", version=f"1 ({zhongshu.__version__})",
                  description=contract.DESCRIPTION, openapi_url=contract.OPENAPI,
                  docs_url=None, redoc_url=None)
    contract.install(app)
    authn = Authenticator(service.catalog)
    browser = Sessions(sessions)
    # what an authenticated route answers whatever it does; routes add their own statuses
    errors = contract.errors(*contract.AUTHENTICATED)
    keys: PublicKeyOf = service.catalog.store.key
    if service.remote is not None:
        keys = federation.pin_peer_keys(keys, service.remote.peers.settings)
    caller = Authentication(authn, Verifier(keys, nonces), browser)
    parts = Parts(service=service, ledger=ledger, caller=caller, authn=authn,
                  sessions=browser, errors=errors, streams=streams, config=config,
                  metrics=metrics or Metrics(service.city.hub.metrics_names))
    app.state.metrics, app.state.authn = parts.metrics, authn  # the wire endpoint's too
    add_error_handlers(app, ledger, service)
    app.add_middleware(CountRequests, metrics=parts.metrics)
    for routes in (probes, identity, hub, catalog, query, grants, federation, ngsild):
        routes.add_routes(app, parts)
    if ledger is not None:
        add_ledger_routes(app, ledger, service, caller, errors)
    add_subscribe_route(app, service, ledger, caller,
                        errors | contract.errors(400, 404, 413, 429, 503, 504))
    app.state.scenario_door = ScenarioDoor(caller, service.catalog, rates)
    settings = service.city.people
    if settings is not None:
        tokens = IdTokens(settings, service.subject_key, own_url)
        caller.people = People(settings, service, ledger, tokens)
        if ledger is not None:
            add_me_routes(app, caller.people, ledger, rates, contract.errors(401, 503))
    return app
