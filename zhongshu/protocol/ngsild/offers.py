"""What the city offers as NGSI-LD: each dataset its owner mapped to an entity type
(``[datasets.entity]``), read from the catalog, and what one caller may read of each."""

from __future__ import annotations

from dataclasses import dataclass

from zhongshu.catalog.catalog import Catalog, Dataset
from zhongshu.config.entity import EntityMapping
from zhongshu.policy.grants import Grants
from zhongshu.policy.identity import Caller


@dataclass(frozen=True)
class Offer:
    """One dataset offered as entities of ``mapping.type``."""

    dataset: Dataset
    mapping: EntityMapping

    @property
    def name(self) -> str:
        return self.dataset.name

    def column_type(self, column: str) -> str:
        c = self.dataset.column(column)
        assert c is not None  # the mapping's columns were checked against the dataset's
        return c.type.upper()

    def prefix(self) -> str:
        return self.mapping.id.split("{", 1)[0]


def offers(catalog: Catalog) -> list[Offer]:
    """Every dataset of the city offered as an entity type, by dataset name."""
    return [Offer(d, d.config.entity) for d in sorted(catalog.datasets.values(),
                                                      key=lambda d: d.name)
            if d.config.entity is not None]


def readable(grants: Grants, who: Caller, offer: Offer) -> bool:
    """Whether ``who`` owns the offer's dataset or holds a live grant on it (any purpose)."""
    return offer.dataset.owner == who.name or bool(grants.of(who.name, offer.name))


def type_names(all_offers: list[Offer]) -> dict[str, str]:
    """Each type's short name and full URI → its short name."""
    out: dict[str, str] = {}
    for o in all_offers:
        t = o.mapping.type
        out[t] = t
        out[o.mapping.expand(t)] = t
    return out


def attribute_names(all_offers: list[Offer]) -> dict[str, str]:
    """Each attribute's short name and full URI → its short name."""
    out: dict[str, str] = {}
    for o in all_offers:
        for a in o.mapping.attributes:
            out[a] = a
            out[o.mapping.expand(a)] = a
    return out
