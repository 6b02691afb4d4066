"""What every configuration model shares: strict, frozen models and the name patterns."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Classification = Literal["public", "internal", "personal", "sensitive"]
MemberKind = Literal["department", "enterprise", "district", "scenario", "hub", "cockpit",
                     "auditor", "consumer"]

NAME = r"^[a-z][a-z0-9_-]*$"
DATASET = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"
COLUMN = r"^[a-z_][a-z0-9_]*$"


class Strict(BaseModel):
    """A configuration table: unknown keys are refused, values never change once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(Strict):
    name: str = Field(pattern=COLUMN)
    type: str = Field(description="DuckDB type name: VARCHAR, BIGINT, DOUBLE, TIMESTAMP, …")
    classification: Classification = "internal"
    description: str = ""
    expr: str | None = Field(default=None,
                             description="SQL expression over the source table (DuckDB dialect); "
                                         "default: the source column of the same name")
    identifies: Literal["plate", "id_number"] | None = Field(
        default=None, description="the column holds a person's identifier of this kind "
        "(personal or sensitive columns only): lookups by it are tagged for that person")

    @model_validator(mode="after")
    def _identifies(self) -> Column:
        if self.identifies and self.classification not in ("personal", "sensitive"):
            raise ValueError(f"column `{self.name}` identifies a person: classify it "
                             "`personal` or `sensitive`")
        return self
