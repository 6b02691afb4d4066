"""What a member file's ``[[grants]]`` say: who may read which columns of the owner's
datasets, for which purposes, and how each column is masked (enforced by ``zhongshu.policy``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from zhongshu.config._base import NAME, Strict

MaskKind = Literal["redact", "partial", "pseudonym", "generalize", "aggregate_only"]


class Mask(Strict):
    """How one column leaves the hub for a grant.

    * ``redact`` — always NULL;
    * ``partial`` — keep ``keep_start`` leading and ``keep_end`` trailing characters, the rest
      shown as ``fill`` (plates ``浙A·****12``, phones ``138****5678``); ``pattern = "birth_year"``
      keeps only the birth year of an 18-digit resident id number;
    * ``pseudonym`` — a keyed hash, keyed per consumer × purpose (× ``rotate`` period): joinable
      across every dataset granted to that consumer for that purpose, unlinkable otherwise,
      never reversible; equality with a literal still finds a known identifier's rows;
    * ``generalize`` — numbers rounded to ``step``, times truncated to ``unit``, coordinates
      rounded to ``digits`` decimals;
    * ``aggregate_only`` — readable only inside ``count``, ``sum``, ``avg``, ``stddev`` or
      ``variance``, over groups of at least ``k`` rows (smaller groups are left out).
    """

    kind: MaskKind
    keep_start: int = Field(default=2, ge=0)
    keep_end: int = Field(default=2, ge=0)
    fill: str = "****"
    separator: str = ""
    pattern: Literal["birth_year"] | None = None
    rotate: Literal["day", "month"] | None = None
    step: float | None = Field(default=None, gt=0)
    unit: Literal["minute", "hour", "day", "week", "month", "year"] | None = None
    digits: int | None = Field(default=None, ge=0, le=6)
    k: int = Field(default=5, ge=2, description="aggregate_only: rows per group at least")


class GrantConfig(Strict):
    """The owner lets ``consumer`` read some columns of its datasets for some purposes."""

    id: str | None = Field(default=None, pattern=NAME,
                           description="stable name of the grant (default: consumer-dataset)")
    consumer: str = Field(description="member the data goes to")
    datasets: list[str] = Field(min_length=1, description="datasets of this member")
    purposes: list[str] = Field(min_length=1, description="what the consumer may use it for")
    columns: list[str] | None = Field(default=None,
                                      description="columns granted (default: public and "
                                                  "internal ones)")
    masking: dict[str, Mask | MaskKind] = Field(default_factory=dict,
                                               description="column → how it is masked")
    row_scope: str | dict[str, str] | None = Field(
        default=None, description="SQL predicate on the dataset (or dataset → predicate); "
                                  "may reference other datasets in a subquery")
    expires: datetime | None = Field(default=None, description="no access after this time")
    rate_limit: int | None = Field(default=None, ge=1, description="queries per minute")

    @field_validator("masking", mode="after")
    @classmethod
    def _masks(cls, v: dict[str, Mask | MaskKind]) -> dict[str, Mask | MaskKind]:
        return {k: (Mask(kind=m) if isinstance(m, str) else m) for k, m in v.items()}
