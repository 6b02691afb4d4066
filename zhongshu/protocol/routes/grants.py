"""``/v1/grants``: the grants a member made and received, and owners granting through the API."""

from typing import Annotated, Any

from fastapi import Depends, FastAPI

from zhongshu.policy.areas import AreaReader
from zhongshu.policy.grants import Grant
from zhongshu.policy.identity import Caller
from zhongshu.protocol.contract import errors as answers
from zhongshu.protocol.models import GrantIn
from zhongshu.protocol.routes import Parts


def add_routes(app: FastAPI, parts: Parts) -> None:
    """Mount listing, adding and revoking grants."""
    service, errors = parts.service, parts.errors

    def grant_out(g: Grant, areas: AreaReader) -> dict[str, Any]:
        return {"id": g.id, "owner": g.owner, "consumer": g.consumer, "dataset": g.dataset,
                "columns": list(g.columns), "purposes": list(g.purposes),
                "masking": {c: m.kind for c, m in g.masking.items()},
                "row_scope": g.row_scope,
                # which areas' rows the scope lets through (None: any): the cockpit's pages
                "areas": areas.of(g.row_scope, g.dataset),
                "expires": g.expires.isoformat() if g.expires else None,
                "rate_limit": g.rate_limit, "expired": g.expired(),
                "managed_by": "api" if g.id.split(":")[0] in service.grants.stored
                else "member file"}

    @app.get("/v1/grants", responses=errors, tags=["grants"])
    def grants(who: Annotated[Caller, Depends(parts.caller)]) -> dict[str, Any]:
        """The grants the caller has made on its datasets, and those made to it; each with
        the ``areas`` (district and street names of ``city.toml``) whose rows its row scope
        lets through, ``null`` for any (``zhongshu.policy.areas``)."""
        service.refresh_grants()
        current = service.grants
        areas = AreaReader.of_catalog(service.catalog)
        given = [grant_out(g, areas) for g in current.given(who.name)]
        received = [grant_out(g, areas) for d in service.catalog.datasets.values()
                    for g in current.of(who.name, d.name)]
        return {"given": given, "received": received}

    @app.post("/v1/grants", status_code=201, responses=errors | answers(400), tags=["grants"])
    def add_grant(body: GrantIn,
                  who: Annotated[Caller, Depends(parts.caller)]) -> dict[str, str]:
        """Grant some of the caller's own datasets to another member (recorded with who)."""
        gid = service.grants.add(who.name, body.model_dump(exclude_none=True),
                                 actor=f"member:{who.name}")
        service.refresh_grants(force=True)
        return {"id": gid}

    @app.delete("/v1/grants/{grant_id}", responses=errors | answers(404), tags=["grants"])
    def revoke_grant(grant_id: str,
                     who: Annotated[Caller, Depends(parts.caller)]) -> dict[str, str]:
        """Revoke a grant the caller made through the API or CLI (recorded with who)."""
        service.grants.revoke(who.name, grant_id, actor=f"member:{who.name}")
        service.refresh_grants(force=True)
        return {"revoked": grant_id}
