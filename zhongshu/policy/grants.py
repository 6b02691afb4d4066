"""Grants: what each owner lets each consumer read, for which purposes, in which shape.

Declared by the data owner in its member file (``[[grants]]``). For one caller, dataset and
purpose the decision is:

* the owner reads every column of its own datasets, unmasked and unscoped;
* otherwise a grant to the caller on the dataset must exist (no grant: ``forbidden`` for a
  listed dataset, ``dataset_not_found`` for an unlisted one), be unexpired, and name the
  purpose (``purpose_not_granted`` otherwise, saying which purposes it does name);
* the grant's columns (default: the public and internal ones) are readable, each masked as
  the grant says, and only rows satisfying the grant's row scope are seen.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlglot
from pydantic import ValidationError

from zhongshu.catalog.catalog import Catalog, Dataset
from zhongshu.config import GrantConfig, Mask
from zhongshu.errors import (
    BadRequest,
    DatasetNotFound,
    Forbidden,
    NotFound,
    PurposeNotGranted,
    RateLimited,
)
from zhongshu.policy.identity import Caller
from zhongshu.stores import RateCounters

_OPEN = ("public", "internal")


@dataclass(frozen=True)
class Grant:
    """One grant, resolved to one dataset."""

    id: str
    owner: str
    consumer: str
    dataset: str
    purposes: tuple[str, ...]
    columns: tuple[str, ...]
    masking: dict[str, Mask] = field(hash=False)
    row_scope: str | None
    expires: datetime | None
    rate_limit: int | None

    def expired(self, now: datetime | None = None) -> bool:
        """Whether the grant has expired."""
        if self.expires is None:
            return False
        exp = self.expires if self.expires.tzinfo else self.expires.replace(tzinfo=UTC)
        return (now or datetime.now(UTC)) >= exp


@dataclass(frozen=True)
class Access:
    """What one caller may read of one dataset for one purpose."""

    dataset: Dataset
    grant: Grant | None  # None: the caller owns the dataset
    columns: tuple[str, ...]
    masking: dict[str, Mask]
    row_scope: str | None


class Grants:
    """All grants of a city, indexed by consumer and dataset."""

    def __init__(self, catalog: Catalog, rates: RateCounters) -> None:
        self.catalog = catalog
        self.rates = rates  # shared by every reload of the grants: a reload is no reset
        self._by: dict[tuple[str, str], list[Grant]] = {}
        self.stored: dict[str, str] = {}  # id of a grant made by CLI/API → owner
        for owner, mf in catalog.city.members.items():
            for g in mf.grants:
                self._add(owner, g, None)
        for gid, owner, spec, _actor in catalog.store.stored_grants():
            try:
                self._add(owner, GrantConfig.model_validate(spec), gid)
                self.stored[gid] = owner
            except (ValidationError, KeyError):
                continue  # a grant on a dataset since removed from the configuration

    def _add(self, owner: str, g: GrantConfig, stored_id: str | None) -> None:
        for ds_name in g.datasets:
            ds = self.catalog.datasets[ds_name]
            declared = [c.name for c in ds.columns]
            if g.columns is None:
                cols = [c.name for c in ds.columns if c.classification in _OPEN]
            else:
                cols = [c for c in g.columns if c in declared]
            masks = {c: m for c, m in g.masking.items() if c in declared and isinstance(m, Mask)}
            scope = g.row_scope.get(ds_name) if isinstance(g.row_scope, dict) else g.row_scope
            base = stored_id or g.id
            gid = (f"{base}:{ds_name}" if len(g.datasets) > 1 else base) if base \
                else f"{g.consumer}:{ds_name}"
            grant = Grant(id=gid, owner=owner, consumer=g.consumer, dataset=ds_name,
                          purposes=tuple(g.purposes), columns=tuple(cols), masking=masks,
                          row_scope=scope, expires=g.expires, rate_limit=g.rate_limit)
            self._by.setdefault((g.consumer, ds_name), []).append(grant)

    def given(self, owner: str) -> list[Grant]:
        """Every grant ``owner`` has made (file and stored), expired ones included."""
        return [g for gs in self._by.values() for g in gs if g.owner == owner]

    def add(self, owner: str, spec: dict[str, Any], actor: str) -> str:
        """Validate and store a grant by ``owner``; record the change. Returns the grant id.

        Raises:
            BadRequest: the grant is malformed, names another member's dataset, a column or
                consumer that does not exist, or duplicates a grant for the same purpose.
        """
        try:
            g = GrantConfig.model_validate(spec)
        except ValidationError as e:
            err = e.errors()[0]
            field_ = ".".join(str(p) for p in err["loc"])
            raise BadRequest(f"grant: {field_}: {err['msg']}") from None
        if g.consumer not in self.catalog.members or g.consumer == owner:
            raise BadRequest(f"grant: `{g.consumer}` is not another member of this city")
        for ds_name in g.datasets:
            ds = self.catalog.dataset(ds_name)
            if ds is None or ds.owner != owner:
                raise BadRequest(f"grant: `{ds_name}` is not a dataset of `{owner}`; a member "
                                 "grants only its own datasets")
            for col in list(g.columns or []) + list(g.masking):
                if ds.column(col) is None and len(g.datasets) == 1:
                    raise BadRequest(f"grant: `{ds_name}` has no column `{col}`")
            for existing in self.of(g.consumer, ds_name):
                if set(existing.purposes) & set(g.purposes):
                    raise BadRequest(f"grant: `{ds_name}` is already granted to "
                                     f"`{g.consumer}` for purpose(s) "
                                     f"{sorted(set(existing.purposes) & set(g.purposes))} "
                                     f"by grant `{existing.id}`; revoke it first")
        scopes = g.row_scope.values() if isinstance(g.row_scope, dict) else [g.row_scope]
        for scope in scopes:
            if scope:
                try:
                    sqlglot.parse_one(scope, read="duckdb")
                except sqlglot.ParseError:
                    raise BadRequest("grant: row_scope is not a valid SQL predicate") from None
        gid = g.id or f"{g.consumer}-{secrets.token_hex(4)}"
        if gid in self.stored:
            raise BadRequest(f"grant: id `{gid}` is taken")
        stored = g.model_dump(mode="json", exclude_none=True, by_alias=True)
        self.catalog.store.add_grant(gid, owner, stored, actor)
        self.catalog.store.record_change(actor, "grant.add", gid, {"owner": owner, **stored})
        return gid

    def revoke(self, owner: str, grant_id: str, actor: str) -> None:
        """Revoke a grant made through the CLI or API; record the change.

        Raises:
            NotFound: no such stored grant of ``owner`` (grants declared in member files are
                changed by editing the file).
        """
        spec = next((s for i, _, s, _ in self.catalog.store.stored_grants() if i == grant_id),
                    {})
        if self.stored.get(grant_id) != owner or not self.catalog.store.revoke_grant(
                grant_id, actor):
            raise NotFound(f"`{owner}` has no grant `{grant_id}` made through the CLI or API "
                           "(grants declared in member files are changed there)")
        self.catalog.store.record_change(actor, "grant.revoke", grant_id,
                                         {"owner": owner, "datasets": spec.get("datasets", [])})

    def of(self, consumer: str, dataset: str) -> list[Grant]:
        """Unexpired grants to ``consumer`` on ``dataset``."""
        return [g for g in self._by.get((consumer, dataset), []) if not g.expired()]

    def visible(self, caller: Caller, dataset: Dataset) -> bool:
        """Whether the dataset exists for the caller (listed, owned, or granted)."""
        return dataset.listed or dataset.owner == caller.name or bool(
            self.of(caller.name, dataset.name))

    def decide(self, caller: Caller, dataset: Dataset, purpose: str) -> Access:
        """What ``caller`` may read of ``dataset`` for ``purpose``.

        Raises:
            DatasetNotFound: unlisted and not granted (indistinguishable from missing).
            Forbidden: listed, but the caller holds no grant on it.
            PurposeNotGranted: grants exist, none for this purpose.
        """
        if dataset.owner == caller.name:
            return Access(dataset, None, tuple(c.name for c in dataset.columns), {}, None)
        grants = self.of(caller.name, dataset.name)
        if not grants:
            if not dataset.listed:
                raise DatasetNotFound(f"no dataset `{dataset.name}`; `GET /v1/catalog` lists "
                                      "the datasets you can use")
            raise Forbidden(f"`{caller.name}` holds no grant on `{dataset.name}`; ask its "
                            f"owner `{dataset.owner}` for one, naming the columns and the "
                            "purpose")
        for g in grants:
            if purpose in g.purposes:
                return Access(dataset, g, g.columns, g.masking, g.row_scope)
        allowed = sorted({p for g in grants for p in g.purposes})
        raise PurposeNotGranted(f"`{dataset.name}` is granted to `{caller.name}` for purpose "
                                f"{', '.join(f'`{p}`' for p in allowed)}, not "
                                f"`{purpose}`")

    def level(self, caller: Caller, dataset: Dataset) -> str:
        """``none``, ``partial`` or ``full``, over every purpose, as the catalog shows it."""
        if dataset.owner == caller.name:
            return "full"
        cols = {c for g in self.of(caller.name, dataset.name) for c in g.columns}
        masked = any(g.masking or g.row_scope for g in self.of(caller.name, dataset.name))
        if not cols:
            return "none"
        return "full" if len(cols) == len(dataset.columns) and not masked else "partial"

    def spend(self, grant: Grant) -> None:
        """Count one query against the grant's rate limit.

        Raises:
            RateLimited: more than ``rate_limit`` queries in the last minute.
        """
        if grant.rate_limit is None:
            return
        retry = self.rates.hit(f"grant:{grant.id}", grant.rate_limit, 60.0, time.time())
        if retry is not None:
            raise RateLimited(f"grant `{grant.id}` allows {grant.rate_limit} queries per "
                              f"minute; retry in {retry:.0f} s")
