"""An owner's declaration that a dataset is offered as an NGSI-LD entity type
(``[datasets.entity]`` in its member file), read by the NGSI-LD face (``protocol.ngsild``).

::

    [datasets.entity]
    type = "OffStreetParking"
    vocabulary = "https://smartdatamodels.org/dataModel.Parking/"
    id = "urn:ngsi-ld:OffStreetParking:westlake-{garage_no}"
    location = { lon = "lng", lat = "lat" }
    observed_at = "updated_at"           # optional: the time of the observation

    [datasets.entity.attributes]
    name = "name"                        # attribute = column
    totalSpotNumber = "total_spaces"
    status = { column = "occupied", values = { "true" = "occupied", "false" = "free" } }
    occupiedSpotNumber = { column = "occupied", observed = true }

Only names come from here into the hub's SQL: the id template's keys, the attributes' and the
location's columns, each checked against the dataset's declared columns; a request's values
never become SQL text. What spans datasets (an id prefix used twice for one type, one
attribute of one type with two column types) is checked in :mod:`zhongshu.config.checks`.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, model_validator

from zhongshu.config._base import COLUMN, Strict

#: an entity type or attribute name as NGSI-LD short names go (no ``:``, no ``/``)
TERM = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
#: what the core context already names: never an offered attribute
RESERVED = frozenset({"id", "type", "location", "observedAt", "createdAt", "modifiedAt",
                      "scope", "observationSpace", "operationSpace", "value", "@context"})
#: attributes that the core context (not the type's vocabulary) expands
CORE_TERMS = frozenset({"name", "description"})
_KEY = re.compile(r"\{([^{}]*)\}")


def id_parts(template: str) -> list[str]:
    """``urn:ngsi-ld:T:w-{garage_no}`` → ``["urn:ngsi-ld:T:w-", "garage_no", ""]``: literal
    text and key columns alternating, literal first.

    >>> id_parts("urn:ngsi-ld:Lot:{a}-{b}")
    ['urn:ngsi-ld:Lot:', 'a', '-', 'b', '']
    """
    return _KEY.split(template)


class EntityAttribute(Strict):
    """One attribute: a column, with optionally its values translated (column value, as
    text, → the attribute's value) and ``observedAt`` from the mapping's ``observed_at``."""

    column: str = Field(pattern=COLUMN)
    values: dict[str, str | int | float | bool] | None = Field(
        default=None, description="column value (as text: `true`, `1`, `A`) → the "
                                  "attribute's value; a value not listed is sent as it is")
    observed: bool = Field(default=False, description="carries `observedAt` (the "
                           "mapping's `observed_at` column)")


class EntityLocation(Strict):
    lon: str = Field(pattern=COLUMN, description="longitude column (WGS 84)")
    lat: str = Field(pattern=COLUMN, description="latitude column (WGS 84)")


class EntityMapping(Strict):
    """A dataset offered as entities of one NGSI-LD type."""

    type: str = Field(pattern=TERM, description="the entity type's short name "
                      "(a Smart Data Models type: `OffStreetParking`)")
    vocabulary: str = Field(pattern=r"^(https?|urn):[^\s<>\"{}]+[/#:]$",
                            description="the URI the type's and its attributes' short names "
                                        "expand under (ending in /, # or :)")
    id: str = Field(description="the entity id, a URN with key columns in braces")
    location: EntityLocation | None = None
    observed_at: str | None = Field(default=None, pattern=COLUMN)
    attributes: dict[str, str | EntityAttribute] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _columns_as_tables(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("attributes"), dict):
            data = {**data, "attributes": {
                k: {"column": v} if isinstance(v, str) else v
                for k, v in data["attributes"].items()}}
        return data

    @model_validator(mode="after")
    def _check(self) -> EntityMapping:
        parts = id_parts(self.id)
        if not self.id.startswith("urn:") or not re.fullmatch(r"[A-Za-z0-9:._~-]*",
                                                              "".join(parts[::2])):
            raise ValueError(f"id `{self.id}` must be a URN (`urn:ngsi-ld:{self.type}:…`) "
                             "of letters, digits and : . _ ~ -, with key columns in braces")
        keys = parts[1::2]
        if not keys:
            raise ValueError(f"id `{self.id}` names no key column: put one in braces "
                             "(`{garage_no}`)")
        for k in keys:
            if not re.fullmatch(COLUMN, k):
                raise ValueError(f"id `{self.id}`: `{{{k}}}` is not a column name")
        if any(p == "" for p in parts[2:-1:2]):
            raise ValueError(f"id `{self.id}`: put a separator between two key columns")
        for name in self.attributes:
            if not re.fullmatch(TERM, name) or name in RESERVED:
                raise ValueError(f"attribute `{name}` is not a name an entity may offer "
                                 "(letters, digits and _, not one of "
                                 f"{', '.join(sorted(RESERVED - {'@context'}))})")
        return self

    def keys(self) -> list[str]:
        """The id template's key columns, in order."""
        return id_parts(self.id)[1::2]

    def attribute(self, name: str) -> EntityAttribute:
        a = self.attributes[name]
        assert isinstance(a, EntityAttribute)  # the before-validator made every one a table
        return a

    def columns(self) -> set[str]:
        """Every column the mapping names."""
        cols = set(self.keys()) | {self.attribute(n).column for n in self.attributes}
        if self.location:
            cols |= {self.location.lon, self.location.lat}
        if self.observed_at:
            cols.add(self.observed_at)
        return cols

    def expand(self, term: str) -> str:
        """The full URI of the type or one of its attributes."""
        if term in CORE_TERMS:
            return f"https://uri.etsi.org/ngsi-ld/{term}"
        return self.vocabulary + term
