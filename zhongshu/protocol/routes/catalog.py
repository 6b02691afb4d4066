"""The data directory: ``/v1/catalog`` and ``/v1/datasets/{name}``, as the caller may see it."""

from typing import Annotated, Any

from fastapi import Depends, FastAPI

from zhongshu.catalog.catalog import Dataset
from zhongshu.errors import DatasetNotFound
from zhongshu.policy.grants import Grants
from zhongshu.policy.identity import Caller
from zhongshu.protocol.contract import errors as answers
from zhongshu.protocol.models import DatasetDetailOut, DatasetOut
from zhongshu.protocol.routes import Parts


def dataset_out(ds: Dataset, caller: Caller, grants: Grants) -> dict[str, Any]:
    """A dataset as the catalog lists it, with the caller's level of access."""
    return {"name": ds.name, "owner": ds.owner, "title": ds.config.title,
            "description": ds.config.description,
            "columns": [{"name": c.name, "type": c.type, "classification": c.classification,
                         "description": c.description} for c in ds.columns],
            "area_column": ds.config.area_column,
            "access": grants.level(caller, ds),
            "status": "ok" if ds.status == "ok" else "unavailable"}


def add_routes(app: FastAPI, parts: Parts) -> None:
    """Mount the catalog and one dataset's page."""
    service, errors = parts.service, parts.errors

    @app.get("/v1/catalog", response_model=list[DatasetOut], responses=errors, tags=["catalog"])
    def catalog(who: Annotated[Caller, Depends(parts.caller)]) -> list[dict[str, Any]]:
        """Every listed dataset, and every unlisted one the caller may use."""
        grants = service.grants
        return [dataset_out(d, who, grants)
                for d in sorted(service.catalog.datasets.values(), key=lambda d: d.name)
                if grants.visible(who, d)]

    @app.get("/v1/datasets/{name}", response_model=DatasetDetailOut,
             responses=errors | answers(404), tags=["catalog"])
    def dataset(name: str, who: Annotated[Caller, Depends(parts.caller)]) -> dict[str, Any]:
        """One dataset, with what the caller may read of it."""
        grants = service.grants
        ds = service.catalog.dataset(name)
        if ds is None or not grants.visible(who, ds):
            raise DatasetNotFound(f"no dataset `{name}`; `GET /v1/catalog` lists the datasets "
                                  "you can use")
        out = dataset_out(ds, who, grants)
        if ds.owner == who.name:
            out["grants"] = [{"id": "owner", "columns": [c.name for c in ds.columns],
                              "purposes": ["*"], "masking": {}, "row_scope": None}]
        else:
            out["grants"] = [{"id": g.id, "columns": list(g.columns),
                              "purposes": list(g.purposes),
                              "masking": {c: m.kind for c, m in g.masking.items()},
                              "row_scope": g.row_scope,
                              "expires": g.expires.isoformat() if g.expires else None,
                              "rate_limit": g.rate_limit, "dimensions": list(g.dimensions),
                              "k": g.k or None, "lookups_per_day": g.lookups_per_day}
                             for g in grants.of(who.name, ds.name)]
        return out
