"""What a member file's ``[[grants]]`` say: who may read which columns of the owner's
datasets, for which purposes, and how each column is masked (enforced by ``zhongshu.policy``)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from zhongshu.config._base import NAME, Strict

CLIP_MAX = 1e15
"""The largest |bound| of a clip: sums of clipped values stay exact enough, never infinite."""

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
    * ``aggregate_only`` — the dataset becomes, for that grant, an *aggregate dataset*: the
      caller asks for ``count``/``sum``/``avg`` of such columns by the grant's
      ``dimensions``, the hub writes the SQL itself, clips each row's value to ``clip``
      (``sum``/``avg`` need it) and answers only groups — and cells of the dimensions — of at
      least ``k`` subjects (``zhongshu.policy.aggregate``).

    A ``pseudonym`` column looked up by equality with a literal spends the consumer's lookup
    budget (``lookups_per_day`` of the grant), counted after ``normalise``: ``plate`` strips
    spaces, hyphens and dots and upper-cases (``浙A 12345`` = ``浙a-12345``), ``id_number``
    strips spaces and upper-cases the check letter; ``exact`` (default) counts the text as
    written. The looked-up value is the normalised one, so what is counted is what is probed.
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
    k: int = Field(default=5, ge=2, description="aggregate_only: subjects per group at least")
    clip: tuple[float, float] | None = Field(
        default=None, description="aggregate_only: each row's value is clipped to [lo, hi] "
                                  "before sum and avg (required for them)")
    normalise: Literal["exact", "plate", "id_number"] = Field(
        default="exact", description="pseudonym: how a looked-up value is normalised")

    @model_validator(mode="after")
    def _clip(self) -> Mask:
        if self.clip is not None:
            lo, hi = self.clip
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi
                    and max(abs(lo), abs(hi)) <= CLIP_MAX):
                raise ValueError(f"clip: [lo, hi] with lo <= hi, both finite and within "
                                 f"±{CLIP_MAX:g}")
        return self


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
    dimensions: list[str] = Field(
        default_factory=list, description="aggregate_only: the columns a caller may group "
                                          "and filter by (low-cardinality, the owner's choice)")
    subject: str | None = Field(
        default=None, description="aggregate_only: the column naming whom a row is about "
                                  "(k counts distinct subjects; default: rows)")
    lookups_per_day: int = Field(
        default=100, ge=0, description="distinct pseudonym values looked up per rolling 24 h "
                                       "(consumer × purpose)")

    @model_validator(mode="after")
    def _dimensions(self) -> GrantConfig:
        for d in self.dimensions:
            m = self.masking.get(d)
            kind = m.kind if isinstance(m, Mask) else m
            if kind in ("aggregate_only", "pseudonym", "redact"):
                raise ValueError(f"dimensions: `{d}` is masked `{kind}`; a dimension is a "
                                 "low-cardinality column read as it is (or generalised)")
        return self

    @field_validator("masking", mode="after")
    @classmethod
    def _masks(cls, v: dict[str, Mask | MaskKind]) -> dict[str, Mask | MaskKind]:
        return {k: (Mask(kind=m) if isinstance(m, str) else m) for k, m in v.items()}
