"""``[federation]`` of ``city.toml``: this hub's peers (district hubs, the city hub) and how
their catalogs are kept.

::

    [federation]
    member = "hub-city"              # this hub's member name at its peers
    key = "state/federation.key"     # its Ed25519 key: signs requests and catalogs
    refresh_s = 30                   # a peer's catalog is fetched this often
    catalog_valid_s = 600            # the catalog this hub publishes is valid this long
    timeout_s = 1.0                  # per-peer time limit to connect
    answer_timeout_s = 10.0          # per-peer time limit to answer a query

    [[federation.peers]]
    name = "hub-xihu"                # the peer's member name here (a member of kind hub)
    url = "http://127.0.0.1:8401"
    public_key = "base64 of the raw 32-byte Ed25519 public key"
    role = "district"
    namespace = "xihu"               # its datasets are named xihu_*.* (default: name - hub-)

    [[federation.unions]]
    name = "grid.events"             # one dataset over the districts' own
    owner = "city-grid"              # the member here who grants it
    parts = ["xihu_grid.events", "binjiang_grid.events"]
    column = "district"              # holds each row's district (its peer's namespace)

A peer is also a member of this city (``members/hub-xihu.toml``, kind ``hub``): the owner,
here, of the datasets the peer offers, and so the member whose file grants them onward.
"""

from __future__ import annotations

import base64
import binascii
from typing import Literal

from pydantic import Field, field_validator, model_validator

from zhongshu.config._base import COLUMN, DATASET, NAME, Strict

PeerRole = Literal["district", "city", "peer"]


class PeerConfig(Strict):
    """One peer hub: its member name, where it answers, the key it signs with, its role."""

    name: str = Field(pattern=NAME, description="the peer's member name here (kind hub)")
    url: str = Field(pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
                     description="the peer's base URL")
    public_key: str = Field(description="base64 of the peer's raw 32-byte Ed25519 public key: "
                            "its requests and its catalogs are checked against it")
    role: PeerRole = "district"
    namespace: str = Field(default="", pattern=r"^([a-z][a-z0-9]*)?$",
                           description="its datasets' names begin with `NAMESPACE_` "
                                       "(default: its name without `hub-`; for the role "
                                       "`city`: none — the city's datasets keep their names, "
                                       "and any name that is not this hub's own nor another "
                                       "peer's is the city's)")

    @field_validator("public_key")
    @classmethod
    def _key(cls, v: str) -> str:
        try:
            raw = base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("public_key is base64 of a raw Ed25519 public key") from None
        if len(raw) != 32:
            raise ValueError("public_key: an Ed25519 public key is 32 bytes (44 base64 "
                             "characters)")
        return v

    @model_validator(mode="after")
    def _namespace(self) -> PeerConfig:
        if not self.namespace and self.role != "city":
            ns = self.name.removeprefix("hub-").replace("-", "").replace("_", "")
            if not ns or not ns[0].isalpha():
                raise ValueError(f"peer `{self.name}`: give `namespace` (its datasets' prefix)")
            object.__setattr__(self, "namespace", ns)
        return self

    @property
    def key_bytes(self) -> bytes:
        """The raw public key."""
        return base64.b64decode(self.public_key)

    def owns(self, dataset: str) -> bool:
        """Whether ``dataset`` is in this peer's namespace (``xihu_grid.events`` for
        ``xihu``; any name for a city peer without one — this hub's own names and the other
        peers' namespaces are decided before, see :meth:`FederationSettings.owner_of`)."""
        return not self.namespace or dataset.startswith(f"{self.namespace}_")


class UnionConfig(Strict):
    """One dataset over the same dataset of several peers (``grid.events`` = the union of
    ``<district>_grid.events``), with a column naming each row's peer by its namespace."""

    name: str = Field(pattern=DATASET, description="the union dataset's name")
    owner: str = Field(pattern=NAME, description="the member of this hub who grants it")
    parts: list[str] = Field(min_length=1, description="the peers' datasets it spans")
    column: str = Field(default="district", pattern=COLUMN,
                        description="the column holding each row's peer namespace")
    title: str = ""
    description: str = ""
    listed: bool = True


class FederationSettings(Strict):
    """This hub's place in a federation (``[federation]``)."""

    member: str = Field(pattern=NAME, description="this hub's member name at its peers")
    key: str = Field(default="state/federation.key", description="this hub's Ed25519 "
                     "private key (PEM), relative to the city folder; made when missing")
    refresh_s: float = Field(default=30.0, gt=0, description="how often a peer's catalog is "
                             "fetched")
    catalog_valid_s: float = Field(default=600.0, gt=0, description="how long the catalog "
                                   "this hub publishes is valid")
    timeout_s: float = Field(default=1.0, gt=0, description="per-peer time limit to connect "
                             "(and to answer a catalog request)")
    answer_timeout_s: float = Field(default=10.0, gt=0, description="per-peer time limit to "
                                    "answer a query (within the query's own time limit)")
    breaker_failures: int = Field(default=3, ge=1, description="consecutive failures that "
                                  "open a peer's circuit breaker")
    breaker_open_s: float = Field(default=5.0, gt=0, description="how long an open breaker "
                                  "refuses at once before one trial request")
    peers: list[PeerConfig] = []
    unions: list[UnionConfig] = []

    @model_validator(mode="after")
    def _unique(self) -> FederationSettings:
        for what in ("name", "namespace"):
            values = [getattr(p, what) for p in self.peers]
            dup = {v for v in values if values.count(v) > 1}
            if dup:
                raise ValueError(f"peers: {what} used twice: {', '.join(sorted(dup))}")
        if self.member in {p.name for p in self.peers}:
            raise ValueError(f"`{self.member}` is this hub's own name, not a peer's")
        for u in self.unions:
            if self.owner_of(u.name) is not None:
                raise ValueError(f"union `{u.name}` is named in a peer's namespace")
            holders = [self.owner_of(p) for p in u.parts]
            if any(h is None for h in holders):
                raise ValueError(f"union `{u.name}`: each part is a dataset of a peer "
                                 "(in its namespace)")
            names = [h.name for h in holders if h is not None]
            if len(set(names)) != len(names):
                raise ValueError(f"union `{u.name}`: one part per peer")
        return self

    def peer(self, name: str) -> PeerConfig | None:
        """The peer called ``name``, or None."""
        return next((p for p in self.peers if p.name == name), None)

    def owner_of(self, dataset: str) -> PeerConfig | None:
        """The peer whose namespace ``dataset`` is in (a peer with a namespace before the
        city peer without one), or None."""
        return next((p for p in sorted(self.peers, key=lambda p: not p.namespace)
                     if p.owns(dataset)), None)
