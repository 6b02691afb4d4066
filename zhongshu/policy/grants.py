"""Grants: what each owner lets each consumer read, for which purposes, in which shape.

Declared by the data owner in its member file (``[[grants]]``). For one caller, dataset and
purpose the decision is:

* the owner reads every column of its own datasets, unmasked and unscoped;
* otherwise a grant to the caller on the dataset must exist (no grant: ``forbidden`` for a
  listed dataset, ``dataset_not_found`` for an unlisted one), be unexpired, and name the
  purpose (``purpose_not_granted`` otherwise, saying which purposes it does name);
* the grant's columns (default: the public and internal ones) are readable, each masked as
  the grant says, and only rows satisfying the grant's row scope are seen.

A row scope is its owner's SQL, checked as the owner's query (``zhongshu.policy.owners``):

* when a grant is added (``POST /v1/grants``, ``zhongshu grants add``): refused with a
  ``400`` naming the dataset;
* when the grants are loaded (at start, and at every reload): a member file's row scope whose
  *text* the firewall refuses (syntax, statements, functions off the allow-list, table
  functions) stops the hub with the file and line — the file alone decides that. One that
  reads what its owner may not read (now) — a dataset of another owner without a grant for
  the purpose, a column not granted — depends on other members' grants, which change while
  the hub runs: that grant is *unavailable* (never served; the consumer is told so with
  ``dataset_unavailable``), and it is logged on ``zhongshu.policy`` at ERROR with the file
  and line when the hub starts; ``zhongshu catalog check`` lists it and fails;
* at run time, on every plan: the scope is governed again, as its owner, for the consumer's
  purpose; only that governed form is applied (``rules/row_scope.py``).
"""

from __future__ import annotations

import logging
import secrets
import time
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from zhongshu.catalog.catalog import Catalog, Dataset
from zhongshu.config import GrantConfig, Mask
from zhongshu.config.checks import grant_line
from zhongshu.errors import (
    BadQuery,
    BadRequest,
    ConfigError,
    DatasetNotFound,
    DatasetUnavailable,
    Forbidden,
    NotFound,
    PurposeNotGranted,
    RateLimited,
    ZhongshuError,
)
from zhongshu.policy.identity import Caller
from zhongshu.stores import RateCounters

_OPEN = ("public", "internal")
log = logging.getLogger("zhongshu.policy")
_loaded: weakref.WeakSet[Catalog] = weakref.WeakSet()  # catalogs whose grants were loaded


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
    dimensions: tuple[str, ...] = ()
    subject: str | None = None
    lookups_per_day: int = 100

    @property
    def aggregate_only(self) -> bool:
        """Whether the dataset is, under this grant, an aggregate dataset (some column is
        granted ``aggregate_only``): read only through ``zhongshu.policy.aggregate``."""
        return any(m.kind == "aggregate_only" for m in self.masking.values())

    @property
    def k(self) -> int:
        """The group-size threshold of an aggregate dataset: the largest ``k`` of its
        aggregate-only columns."""
        return max((m.k for m in self.masking.values() if m.kind == "aggregate_only"),
                   default=0)

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

    def __init__(self, catalog: Catalog, rates: RateCounters, *,
                 problems: list[ConfigError] | None = None) -> None:
        """Load the grants of the member files and the stored ones, and check the owners'
        SQL (module docstring): the datasets' definitions, then every row scope.

        Args:
            problems: collect every problem of the owners' SQL here instead of raising the
                first (``zhongshu catalog check``); unavailable grants are listed too.

        Raises:
            ConfigError: a dataset definition, or a member file's row scope, whose text the
                firewall refuses (naming the file and line).
        """
        from zhongshu.policy import owners  # owners' checks use the firewall, built on this

        self.catalog = catalog
        self.rates = rates  # shared by every reload of the grants: a reload is no reset
        self._by: dict[tuple[str, str], list[Grant]] = {}
        self.stored: dict[str, str] = {}  # id of a grant made by CLI/API → owner
        self._origin: dict[str, tuple[str, int | None]] = {}  # id → (owner, index in file)
        self.unavailable: dict[str, tuple[Grant, str]] = {}  # id → (grant, why: the owner's)
        if problems is None:
            owners.check_definitions(catalog, self)
        else:
            problems += owners.definition_problems(catalog, self)
        for owner, mf in catalog.city.members.items():
            for i, g in enumerate(mf.grants):
                self._add(owner, g, None, i)
        for gid, owner, spec, _actor in catalog.store.stored_grants():
            try:
                self._add(owner, GrantConfig.model_validate(spec), gid)
                self.stored[gid] = owner
            except (ValidationError, KeyError):
                continue  # a grant on a dataset since removed from the configuration
        # governing every row scope costs a few ms each: on the first load of a catalog (the
        # hub's start) and for `catalog check`; a reload checks their text only — a scope
        # that no longer passes is refused at run time all the same (``rules/row_scope.py``)
        full = problems is not None or catalog not in _loaded
        self._check_row_scopes(problems, full)
        _loaded.add(catalog)

    def _check_row_scopes(self, problems: list[ConfigError] | None, full: bool) -> None:
        """Check every row scope as its owner's query (``full``; else only its text); leave
        out the grants whose scope reads what its owner may not read (they are unavailable),
        raise for a file's bad text."""
        from zhongshu.policy.rules.row_scope import check_structure, govern_scope

        failed: list[tuple[Grant, str]] = []
        for g in [g for gs in self._by.values() for g in gs if g.row_scope]:
            assert g.row_scope is not None
            ds = self.catalog.datasets[g.dataset]
            member = self.catalog.members.get(g.owner)
            if member is None:
                continue
            owner = Caller(member)
            try:
                check_structure(g.row_scope, owner, ds, self.catalog, self)
            except BadQuery as e:
                problem = self._problem(g, e.message)
                if self._origin[g.id][1] is not None and problems is None:
                    raise problem from None
                failed.append((g, e.message))
                continue
            for purpose in g.purposes if full else ():
                try:
                    govern_scope(g.row_scope, owner=owner, dataset=ds, purpose=purpose,
                                 catalog=self.catalog, grants=self)
                except DatasetUnavailable:
                    continue  # a source's or another grant's state: decided at run time
                except ZhongshuError as e:
                    failed.append((g, f"for purpose `{purpose}`: {e.message}"))
                    break
        for g, why in failed:
            self._by[(g.consumer, g.dataset)].remove(g)
            self.unavailable[g.id] = (g, why)
            problem = self._problem(g, why)
            log.error("grant %s is unavailable (never served): %s", g.id, problem.message)
            if problems is not None:
                problems.append(problem)

    def _problem(self, g: Grant, why: str) -> ConfigError:
        """A row scope's problem, naming the member file and line (a file's grant) or the
        grant's id (one made through the CLI or API)."""
        owner, index = self._origin.get(g.id, (g.owner, None))
        if index is None:
            return ConfigError(f"grant `{g.id}` of `{owner}` to `{g.consumer}` (made through "
                               f"the CLI or API): row_scope on `{g.dataset}`: {why}")
        path = self.catalog.city.member_files.get(owner)
        text = path.read_text(encoding="utf-8") if path is not None else ""
        return ConfigError(f"grant to `{g.consumer}`: row_scope on `{g.dataset}`: {why}",
                           path=str(path or ""), line=grant_line(text, index, g.dataset))

    def _add(self, owner: str, g: GrantConfig, stored_id: str | None,
             index: int | None = None) -> None:
        for ds_name in g.datasets:
            ds = self.catalog.datasets.get(ds_name)
            if ds is None:
                # a peer's remote dataset it does not offer (now): granted once it does
                continue
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
            if g.subject is not None and g.subject not in declared:
                if stored_id is not None:  # checked when made; its dataset changed since
                    raise KeyError(g.subject)
                raise ConfigError(f"grant to `{g.consumer}` on `{ds_name}`: subject "
                                  f"`{g.subject}` is no column of the dataset")
            grant = Grant(id=gid, owner=owner, consumer=g.consumer, dataset=ds_name,
                          purposes=tuple(g.purposes), columns=tuple(cols), masking=masks,
                          row_scope=scope, expires=g.expires, rate_limit=g.rate_limit,
                          dimensions=tuple(d for d in g.dimensions if d in cols),
                          subject=g.subject, lookups_per_day=g.lookups_per_day)
            self._by.setdefault((g.consumer, ds_name), []).append(grant)
            self._origin[gid] = (owner, index)

    def given(self, owner: str) -> list[Grant]:
        """Every grant ``owner`` has made (file and stored), expired and unavailable ones
        included."""
        return [g for gs in self._by.values() for g in gs if g.owner == owner] + [
            g for g, _ in self.unavailable.values() if g.owner == owner]

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
            for col in list(g.columns or []) + list(g.masking) + list(g.dimensions) + \
                    ([g.subject] if g.subject else []):
                if ds.column(col) is None and len(g.datasets) == 1:
                    raise BadRequest(f"grant: `{ds_name}` has no column `{col}`")
            for existing in self.of(g.consumer, ds_name):
                if set(existing.purposes) & set(g.purposes):
                    raise BadRequest(f"grant: `{ds_name}` is already granted to "
                                     f"`{g.consumer}` for purpose(s) "
                                     f"{sorted(set(existing.purposes) & set(g.purposes))} "
                                     f"by grant `{existing.id}`; revoke it first")
        scopes = g.row_scope if isinstance(g.row_scope, dict) else \
            {ds: g.row_scope for ds in g.datasets}
        for ds_name, scope in scopes.items():
            ds = self.catalog.dataset(ds_name)
            if ds is None or ds_name not in g.datasets:
                raise BadRequest(f"grant: row_scope names `{ds_name}`, which this grant does "
                                 "not cover")
            if scope:
                self._check_scope(owner, ds, scope, g.purposes)
        gid = g.id or f"{g.consumer}-{secrets.token_hex(4)}"
        if gid in self.stored:
            raise BadRequest(f"grant: id `{gid}` is taken")
        stored = g.model_dump(mode="json", exclude_none=True, by_alias=True)
        self.catalog.store.add_grant(gid, owner, stored, actor)
        self.catalog.store.record_change(actor, "grant.add", gid, {"owner": owner, **stored})
        return gid

    def _check_scope(self, owner: str, ds: Dataset, scope: str, purposes: list[str]) -> None:
        """Refuse a row scope that does not pass as ``owner``'s query for every purpose.

        Raises:
            BadRequest: naming the dataset and the firewall's refusal.
        """
        from zhongshu.policy.owners import check_row_scope

        try:
            check_row_scope(scope, owner=owner, dataset=ds, purposes=purposes,
                            catalog=self.catalog, grants=self)
        except ZhongshuError as e:
            raise BadRequest(f"grant: row_scope on `{ds.name}` is refused as a query of "
                             f"`{owner}`: {e.message}") from None

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

    def holds(self, grant: Grant) -> bool:
        """Whether ``grant`` is one of these grants (this reload's very object) and has not
        expired: what a plan built under it needs to run now."""
        return not grant.expired() and any(
            g is grant for g in self._by.get((grant.consumer, grant.dataset), ()))

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
            DatasetUnavailable: the grant that would serve it is unavailable (its row scope
                does not pass as its owner's query).
        """
        if dataset.owner == caller.name:
            return Access(dataset, None, tuple(c.name for c in dataset.columns), {}, None)
        grants = self.of(caller.name, dataset.name)
        if not grants:
            self._refuse_unavailable(caller, dataset, purpose)
            if not dataset.listed:
                raise DatasetNotFound(f"no dataset `{dataset.name}`; `GET /v1/catalog` lists "
                                      "the datasets you can use")
            raise Forbidden(f"`{caller.name}` holds no grant on `{dataset.name}`; ask its "
                            f"owner `{dataset.owner}` for one, naming the columns and the "
                            "purpose")
        for g in grants:
            if purpose in g.purposes:
                return Access(dataset, g, g.columns, g.masking, g.row_scope)
        self._refuse_unavailable(caller, dataset, purpose)
        allowed = sorted({p for g in grants for p in g.purposes})
        raise PurposeNotGranted(f"`{dataset.name}` is granted to `{caller.name}` for purpose "
                                f"{', '.join(f'`{p}`' for p in allowed)}, not "
                                f"`{purpose}`")

    def _refuse_unavailable(self, caller: Caller, dataset: Dataset, purpose: str) -> None:
        """Raise ``DatasetUnavailable`` if an unavailable grant would have served this."""
        for g, _ in self.unavailable.values():
            if g.consumer == caller.name and g.dataset == dataset.name and \
                    purpose in g.purposes and not g.expired():
                raise DatasetUnavailable(
                    f"`{dataset.name}` cannot be read through grant `{g.id}`: its row scope "
                    f"does not pass as a query of its owner `{g.owner}`; the owner has been "
                    "told")

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
