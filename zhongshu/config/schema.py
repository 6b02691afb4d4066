"""The schema of a city's files: ``city.toml`` and ``members/*.toml``, and the loaded ``City``.

Each model checks what it can see alone (a dataset's columns, a stream's time column);
what spans files (names unique city-wide, grants naming real datasets, installed source
kinds) is checked by :mod:`zhongshu.config.checks` once everything is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from zhongshu.config._base import COLUMN, DATASET, NAME, Column, MemberKind, Strict
from zhongshu.config.callers import CallerRule
from zhongshu.config.entity import EntityMapping
from zhongshu.config.federation import FederationSettings
from zhongshu.config.grants import GrantConfig
from zhongshu.config.people import PeopleSettings
from zhongshu.config.secrets import SECRET_KEYS
from zhongshu.config.settings import HubSettings, LedgerSettings, StoreSettings

# any installed kind (entry point group ``zhongshu.sources``); checked when the city loads
SourceKind = str


class District(Strict):
    """One district (区县) of the city: short name, 6-digit administrative code, labels."""

    name: str = Field(pattern=NAME, description="short name, used in data and URLs (`xihu`)")
    code: str = Field(pattern=r"^\d{6}$", description="6-digit administrative code")
    name_zh: str = Field(default="", description="Chinese name (西湖区)")
    title: str = Field(default="", description="English name")


class Street(Strict):
    """One street (街道, township) of a district: short name (unique city-wide, e.g.
    ``xihu-lingyin``), its district, its 9-digit administrative code if known, labels."""

    name: str = Field(pattern=NAME, description="short name, unique in the city "
                      "(`xihu-lingyin`)")
    district: str = Field(pattern=NAME, description="the `name` of its district")
    code: str = Field(default="", pattern=r"^(\d{9})?$",
                      description="9-digit administrative code (optional)")
    name_zh: str = Field(default="", description="Chinese name (灵隐街道)")
    title: str = Field(default="", description="English name")


class CityInfo(Strict):
    name: str = Field(pattern=NAME)
    title: str = ""
    name_zh: str = ""
    code: str = ""


class CityFile(Strict):
    city: CityInfo
    hub: HubSettings = HubSettings()
    ledger: LedgerSettings = LedgerSettings()
    store: StoreSettings = StoreSettings()
    districts: list[District] = []
    streets: list[Street] = []
    people: PeopleSettings | None = None
    federation: FederationSettings | None = None


class SourceConfig(Strict):
    """One department system. Credentials are never written here: ``password_secret`` names
    a secret held in ``secrets.toml`` or the environment."""

    name: str = Field(pattern=NAME)
    kind: SourceKind = Field(pattern=NAME, description="an installed source kind: sqlite, "
                             "postgres, mysql, parquet, csv, or one a package adds")
    path: str | None = Field(default=None, description="sqlite file or parquet/csv folder")
    host: str = "127.0.0.1"
    port: int | None = None
    database: str | None = None
    schema_: str | None = Field(default=None, alias="schema")
    user: str | None = None
    password_secret: str | None = None
    max_concurrency: int = Field(default=4, ge=1, description="queries at once on this source")
    statement_timeout_s: float = Field(default=30.0, gt=0,
                                       description="source-side statement timeout")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key.lower() in SECRET_KEYS:
                    raise ValueError(
                        f"`{key}` must not be written in a member file; set "
                        "`password_secret = \"NAME\"` and put NAME in secrets.toml or in the "
                        "environment variable ZHONGSHU_SECRET_NAME")
        return data


class DatasetConfig(Strict):
    name: str = Field(pattern=DATASET, description="namespace.name, e.g. traffic.passages")
    title: str = ""
    description: str = ""
    source: str
    table: str | None = Field(default=None, description="source table (or file stem)")
    query: str | None = Field(default=None, description="a SELECT over the source instead")
    columns: list[Column]
    area_column: str | None = None
    listed: bool = True
    entity: EntityMapping | None = Field(default=None, description="`[datasets.entity]`: "
                                         "offered as an NGSI-LD entity type (docs/ngsi-ld.md)")

    @model_validator(mode="after")
    def _check(self) -> DatasetConfig:
        if bool(self.table) == bool(self.query):
            raise ValueError("give exactly one of `table` or `query`")
        names = [c.name for c in self.columns]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"column(s) declared twice: {', '.join(sorted(dup))}")
        if not names:
            raise ValueError("a dataset needs at least one column")
        if self.area_column and self.area_column not in names:
            raise ValueError(f"area_column `{self.area_column}` is not one of the columns")
        return self


class MemberInfo(Strict):
    name: str = Field(pattern=NAME)
    kind: MemberKind
    title: str = ""
    title_zh: str = ""
    roles: list[str] = []


class Lookup(Strict):
    """Enrich each record with columns of one of the stream owner's own datasets, matched on
    a key (e.g. a camera's segment and direction from ``traffic.checkpoints``); reloaded
    when the hub starts."""

    dataset: str = Field(pattern=DATASET)
    key: str = Field(pattern=COLUMN, description="column of the record (or added by an "
                     "earlier lookup) and of the dataset")
    columns: list[Column] = Field(min_length=1, description="columns taken from the dataset "
                                  "(`expr` computes one from the dataset's columns)")


class PairsConfig(Strict):
    """A derived stream of pairs of consecutive records with the same ``key`` (a vehicle's
    plate) that agree on ``same`` (a road segment) and differ on ``differ`` (its two
    cameras) — the trip between them. Each pair is a record of the later one's columns plus
    ``started_at`` and ``duration_s``; pairs whose ``duration_s / reference`` falls outside
    [``min_ratio``, ``max_ratio``] are outliers (counted, not kept). Aggregates read it by
    its ``name`` like a stream."""

    name: str = Field(pattern=NAME)
    key: str = Field(pattern=COLUMN, description="what is followed (e.g. plate)")
    same: str = Field(pattern=COLUMN, description="both records have the same value")
    differ: str = Field(pattern=COLUMN, description="the two records have different values")
    max_gap_s: float = Field(default=1800, gt=0, description="longest time between the two")
    reference: str | None = Field(default=None, description="column of the expected duration "
                                  "(e.g. free-flow travel time) the ratio is taken against")
    min_ratio: float = Field(default=0.5, ge=0, description="shorter than this × reference: "
                             "an outlier (a misread or cloned plate)")
    max_ratio: float = Field(default=10.0, gt=0, description="longer than this × reference: "
                             "an outlier (the vehicle stopped on the way)")
    lookups: list[Lookup] = Field(default=[], description="columns added to each pair")

    def columns(self, later: list[Column]) -> list[Column]:
        """The pair's columns, given the columns of the records paired."""
        return [*later,
                Column(name="started_at", type="TIMESTAMP", description="time of the first "
                       "record of the pair"),
                Column(name="duration_s", type="DOUBLE", description="seconds from the first "
                       "record to the second"),
                *(c for lk in self.lookups for c in lk.columns)]


class StreamConfig(Strict):
    """A department's event stream the hub subscribes to (subscribing is reading)."""

    name: str = Field(pattern=NAME)
    kind: SourceKind = Field(pattern=NAME, description="an installed streaming source kind: "
                             "mqtt, nats, or one a package adds")
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, description="1883 (MQTT) or 4222 (NATS) by default")
    topic: str = Field(description="MQTT topic filter, or NATS subject")
    format: Literal["json", "csv"] = Field(
        default="json", description="json: one object, or an array of objects, per message; "
                                    "csv: one record per line, columns in declared order")
    columns: list[Column] = Field(description="the schema of one record")
    time_column: str = Field(description="the event-time column (ISO 8601 or epoch seconds)")
    durable: str | None = Field(default=None, description="NATS JetStream durable consumer "
                                "(resumes where it left off; the stream must exist)")
    lookups: list[Lookup] = Field(default=[], description="columns added to each record "
                                  "from one of the owner's own datasets")
    pairs: list[PairsConfig] = Field(default=[], description="derived streams of consecutive "
                                     "records of one key (trips between two cameras)")

    @model_validator(mode="after")
    def _check(self) -> StreamConfig:
        if self.time_column not in {c.name for c in self.columns}:
            raise ValueError(f"time_column `{self.time_column}` is not one of the columns")
        _check_lookups(self.lookups, [c.name for c in self.columns], "stream")
        names = [c.name for c in self.all_columns()]
        for p in self.pairs:
            for what in ("key", "same", "differ"):
                if getattr(p, what) not in names:
                    raise ValueError(f"pairs `{p.name}`: {what} `{getattr(p, what)}` is not "
                                     "one of the stream's columns")
            cols = [c.name for c in p.columns(self.all_columns())]
            _check_lookups(p.lookups, cols[:len(cols) - sum(len(lk.columns)
                                                             for lk in p.lookups)], "pairs")
            if p.reference is not None and p.reference not in cols:
                raise ValueError(f"pairs `{p.name}`: reference `{p.reference}` is not one of "
                                 "its columns")
        return self

    def all_columns(self) -> list[Column]:
        """The record's columns, then those its lookups add."""
        return [*self.columns, *(c for lk in self.lookups for c in lk.columns)]


def _check_lookups(lookups: list[Lookup], names: list[str], what: str) -> None:
    """Each lookup's key is a column of the record or one added by an earlier lookup."""
    have = list(names)
    for lk in lookups:
        if lk.key not in have:
            raise ValueError(f"lookup on `{lk.dataset}`: key `{lk.key}` is not one of the "
                             f"{what}'s columns (nor added by an earlier lookup)")
        have += [c.name for c in lk.columns]


class AggregateConfig(Strict):
    """A windowed aggregate over a stream, kept by the hub as a dataset of the stream's owner."""

    dataset: str = Field(pattern=DATASET, description="the dataset it is served as")
    stream: str = Field(description="a stream (or pairs of a stream) of the same member")
    window_s: int = Field(default=60, ge=1, description="tumbling window, seconds")
    lateness_s: int = Field(default=120, ge=0, description="how long after its end a window "
                            "still takes late events (then it is closed)")
    group_by: list[str] = Field(default=[], description="stream columns to group by")
    measures: dict[str, str] = Field(description="name → count(*), sum(col), avg(col), "
                                                 "min(col), max(col) or last(col)")
    where: str | None = Field(default=None, pattern=COLUMN, description="a boolean column: "
                              "only records where it is true are folded")
    derived: list[Column] = Field(default=[], description="columns computed from the "
                                  "measures when read (`expr` over the measures and groups)")
    title: str = ""
    description: str = ""
    area_column: str | None = None
    listed: bool = True

    @model_validator(mode="after")
    def _check(self) -> AggregateConfig:
        for c in self.derived:
            if not c.expr:
                raise ValueError(f"derived column `{c.name}` needs `expr`")
        return self


class MemberFile(Strict):
    member: MemberInfo
    sources: list[SourceConfig] = []
    datasets: list[DatasetConfig] = []
    grants: list[GrantConfig] = []
    streams: list[StreamConfig] = []
    aggregates: list[AggregateConfig] = []
    callers: list[CallerRule] = Field(default=[], description="a scenario member's: who may "
                                      "call which of its services (``zhongshu.config.callers``)")

    @field_validator("datasets")
    @classmethod
    def _unique(cls, v: list[DatasetConfig]) -> list[DatasetConfig]:
        names = [d.name for d in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"dataset(s) declared twice: {', '.join(sorted(dup))}")
        return v

    @model_validator(mode="after")
    def _stream_names(self) -> MemberFile:
        names = [n for st in self.streams for n in (st.name, *(p.name for p in st.pairs))]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"stream or pairs name(s) used twice: {', '.join(sorted(dup))}")
        return self


class City(BaseModel):
    """A loaded, cross-checked city configuration."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    root: Path
    info: CityInfo
    hub: HubSettings
    districts: list[District]
    members: dict[str, MemberFile]
    streets: list[Street] = []
    ledger: LedgerSettings = LedgerSettings()
    store: StoreSettings = StoreSettings()
    member_files: dict[str, Path]
    people: PeopleSettings | None = None  # the city's identity provider, if people sign in
    federation: FederationSettings | None = None  # this hub's peers, if it is federated

    @property
    def state_dir(self) -> Path:
        """Folder of the hub's own files (metadata store, ledger); created on demand."""
        return self.root / "state"

    def sources(self) -> dict[str, tuple[str, SourceConfig]]:
        """All sources by name, with their owning member."""
        return {s.name: (m.member.name, s) for m in self.members.values() for s in m.sources}

    def datasets(self) -> dict[str, tuple[str, DatasetConfig]]:
        """All datasets by name, with their owning member."""
        return {d.name: (m.member.name, d) for m in self.members.values() for d in m.datasets}
