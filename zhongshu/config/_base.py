"""What every configuration model shares: strict, frozen models and the name patterns."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
