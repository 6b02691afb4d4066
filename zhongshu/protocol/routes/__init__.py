"""The protocol's routes, one module per concern, each ``add_routes(app, parts)``.

``probes`` (``/livez``, ``/readyz``), ``identity`` (browser sessions), ``hub`` (city, health,
metrics), ``catalog`` (the data directory), ``query`` (answers and explanations), ``grants``
(owners' grants), ``ledger`` (checkpoints, proofs, tiles, entries, usage, the witness),
``subscribe`` (Server-Sent Events).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zhongshu.ledger import Ledger
from zhongshu.policy.identity import Authenticator
from zhongshu.protocol.auth import Authentication
from zhongshu.protocol.metrics import Metrics
from zhongshu.protocol.sessions import Sessions
from zhongshu.query.service import QueryService

Responses = dict[int | str, dict[str, Any]]


@dataclass(frozen=True)
class Parts:
    """What the routes use: the query service, the ledger (None: the city runs without one),
    the ``caller`` dependency, browser sessions, metrics and the documented error answers."""

    service: QueryService
    ledger: Ledger | None
    caller: Authentication
    authn: Authenticator
    sessions: Sessions
    metrics: Metrics
    errors: Responses
    #: the streams' states for operators (``StreamService.health``); None: no streams served
    streams: Callable[[], dict[str, dict[str, Any]]] | None = None
    #: the configuration's state for operators (``zhongshu.reload``); None: not followed
    config: Callable[[], dict[str, Any]] | None = None
