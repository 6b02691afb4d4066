"""``GET /v1/federation/catalog``: the signed, expiring catalog this hub offers the peer hub
asking (``zhongshu.federation.catalogs``).

Only a declared peer may ask (a member of kind ``hub``, so its request is signed, named in
``[[federation.peers]]``), and it sees only the datasets this hub's owners grant it, with
only the granted columns and the purposes granted; an aggregate-only grant is not offered
(its dataset is read only through the hub's own aggregate queries). Datasets this hub holds
from other peers are not offered on: a peer offers its own. The catalog is signed with this
hub's federation key and valid for ``catalog_valid_s``.
"""


import time
from typing import Annotated, Any

from fastapi import Depends, FastAPI

from zhongshu.catalog.catalog import Catalog
from zhongshu.config import FederationSettings
from zhongshu.errors import Forbidden, NotFound
from zhongshu.federation import CATALOG_PATH, sign_catalog
from zhongshu.policy.grants import Grants
from zhongshu.policy.identity import Caller
from zhongshu.protocol.contract import errors as answers
from zhongshu.protocol.routes import Parts
from zhongshu.protocol.signatures import PublicKeyOf


def offer(catalog: Catalog, grants: Grants, peer: str, member: str, valid_s: float,
          now: float | None = None) -> dict[str, Any]:
    """The (unsigned) catalog this hub, ``member``, offers ``peer``."""
    issued = int(time.time() if now is None else now)
    datasets = []
    for d in sorted(catalog.datasets.values(), key=lambda d: d.name):
        if catalog.is_remote(d) or d.owner == peer:
            continue
        gs = [g for g in grants.of(peer, d.name) if not g.aggregate_only]
        if not gs:
            continue
        granted = {c for g in gs for c in g.columns}
        columns = [{"name": c.name, "type": c.type, "classification": c.classification,
                    "description": c.description} for c in d.columns if c.name in granted]
        if not columns:
            continue
        area = d.config.area_column if d.config.area_column in granted else None
        datasets.append({"name": d.name, "title": d.config.title, "listed": d.listed,
                         "description": d.config.description,
                         "purposes": sorted({p for g in gs for p in g.purposes}),
                         "area_column": area, "columns": columns})
    return {"version": 1, "hub": member, "for": peer, "issued_at": issued,
            "expires_at": issued + int(valid_s), "datasets": datasets}


def pin_peer_keys(lookup: PublicKeyOf, settings: FederationSettings) -> PublicKeyOf:
    """``lookup`` (key id → member and key) narrowed for the declared peers: a peer's
    request verifies only with the key its ``[[federation.peers]]`` pins (a key registered
    for it before, and since replaced in ``city.toml``, no longer does)."""
    pinned = {p.name: p.key_bytes for p in settings.peers}

    def key(key_id: str) -> tuple[str, bytes] | None:
        found = lookup(key_id)
        if found is not None and found[0] in pinned and found[1] != pinned[found[0]]:
            return None
        return found

    return key


def add_routes(app: FastAPI, parts: Parts) -> None:
    """Mount the federation catalog endpoint."""
    service = parts.service

    @app.get(CATALOG_PATH, tags=["federation"], responses=parts.errors | answers(404))
    def federation_catalog(who: Annotated[Caller, Depends(parts.caller)]) -> dict[str, Any]:
        """The signed catalog this hub offers the asking peer hub: the datasets granted to
        it, with only the granted columns (``{"catalog": {...}, "signature"}``)."""
        remote = service.remote
        if remote is None:
            raise NotFound("this hub is not federated (no `[federation]` in its city.toml)")
        settings = remote.peers.settings
        if who.member.kind != "hub" or settings.peer(who.name) is None:
            raise Forbidden(f"`{who.name}` is not a peer hub of this hub; its operators "
                            "declare peers under [[federation.peers]]")
        service.refresh_grants()
        return sign_catalog(offer(service.catalog, service.grants, who.name, settings.member,
                                  settings.catalog_valid_s), remote.peers.key)
