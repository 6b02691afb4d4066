"""People as callers: the ``[people]`` section of ``city.toml``.

A person (a driver, a patient) is not a member: they sign in with the city's OpenID Connect
identity provider, and the hub checks their ID token (a JWT) against the provider's published
keys. Everything the check depends on is set here::

    [people]
    issuer = "https://id.example-city.gov.cn"       # the token's `iss`, exactly
    audience = "zhongshu-hangzhou"                    # the token's `aud` must hold it
    jwks_url = "https://id.example-city.gov.cn/jwks"  # fetched over HTTP(S), cached
    id_claim = "resident_id"                          # the claim carrying the id number
    algorithms = ["ES256"]
    registry = "traffic.vehicles"                     # plate → owner id number
    registry_plate = "plate"
    registry_owner = "owner_id_number"

    [[people.exclusions]]                             # kept by the data bureau
    member = "traffic-police"
    purpose = "investigation"
    reason = "criminal investigations (Criminal Procedure Law art. 152)"

The hub keeps no password of anyone: it only verifies what the provider signed. A dataset
column that identifies a person says so (``identifies = "plate"`` or ``"id_number"`` on the
column); :mod:`zhongshu.policy.subjects` normalises such identifiers before keying them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from zhongshu.config._base import COLUMN, DATASET, NAME, Strict
from zhongshu.config._lines import find
from zhongshu.errors import ConfigError

if TYPE_CHECKING:
    from zhongshu.config.schema import City

IdentifierKind = Literal["plate", "id_number"]
"""What a column may identify a person by (each has its own normal form)."""

Algorithm = Literal["ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "EdDSA"]
"""Signature algorithms a provider may use (never ``none``, never an HMAC: a shared secret
would let the hub mint tokens)."""


class Exclusion(Strict):
    """A use of people's data that is not shown entry by entry to the person (e.g. an
    investigation): listed to them as such, by whom and why."""

    member: str = Field(pattern=NAME, description="the member whose exchanges are excluded")
    purpose: str = Field(min_length=1, description="only for this purpose")
    reason: str = Field(min_length=1, description="why, as shown to the person (the law)")


class PeopleSettings(Strict):
    """The city's identity provider, and how a person's identifiers are found."""

    issuer: str = Field(min_length=1, description="the ID token's `iss`, exactly")
    audience: str = Field(min_length=1, description="a value the token's `aud` must hold")
    jwks_url: str = Field(pattern=r"^(https?://|/)", description="the provider's JWKS "
                          "document, fetched over HTTP(S) and cached; a path (`/…`) is on "
                          "this hub's own address (the demo's provider)")
    id_claim: str = Field(default="resident_id", min_length=1,
                          description="the claim carrying the resident id number")
    algorithms: list[Algorithm] = Field(default=["ES256"], min_length=1,
                                  description="signature algorithms accepted")
    leeway_s: int = Field(default=30, ge=0, le=300, description="clock skew allowed on "
                          "`exp`, `nbf` and `iat`, seconds")
    jwks_cache_s: int = Field(default=300, ge=1, description="how long a fetched JWKS is "
                              "used before it is fetched again")
    max_token_age_s: int = Field(default=3600, ge=60, description="an ID token whose `exp` "
                                 "is further than this from its `iat` is refused")
    registry: str | None = Field(default=None, pattern=DATASET, description="the dataset "
                                 "telling which plates a person owns (plate → owner id)")
    registry_plate: str = Field(default="plate", pattern=COLUMN)
    registry_owner: str = Field(default="owner_id_number", pattern=COLUMN)
    exclusions: list[Exclusion] = Field(default=[], description="uses not shown entry by "
                                        "entry (listed as such, and recorded)")


def check_people(city: City) -> None:
    """The registry of ``[people]`` is a dataset with its two columns, and the members named
    by exclusions are the city's (run with the other cross-file checks).

    Raises:
        ConfigError: naming ``city.toml`` and the line to change.
    """
    people = city.people
    if people is None:
        return
    path = city.root / "city.toml"
    text = path.read_text(encoding="utf-8")
    if people.registry is not None:
        found = city.datasets().get(people.registry)
        if found is None:
            raise ConfigError(f"people: no dataset `{people.registry}` for the registry",
                              path=str(path), line=find(text, "registry"))
        cols = {c.name for c in found[1].columns}
        for key, col in (("registry_plate", people.registry_plate),
                         ("registry_owner", people.registry_owner)):
            if col not in cols:
                raise ConfigError(f"people: `{people.registry}` has no column `{col}`",
                                  path=str(path), line=find(text, key))
    for ex in people.exclusions:
        if ex.member not in city.members:
            raise ConfigError(f"people.exclusions: no member `{ex.member}` in this city",
                              path=str(path), line=find(text, f'"{ex.member}"'))
