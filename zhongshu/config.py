"""The city configuration: a folder with ``city.toml`` and one file per member.

::

    my-city/
      city.toml              name, districts, hub settings
      members/*.toml         one member each: its sources and datasets (and, later, grants)
      secrets.toml           passwords, by secret name (or ZHONGSHU_SECRET_<NAME> variables)
      data/                  files of embedded sources (SQLite, Parquet, CSV)
      state/                 the hub's own metadata store (and ledger)

Every file is validated; an error names the file, the line where it can be found, and the fix.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from zhongshu.errors import ConfigError

Classification = Literal["public", "internal", "personal", "sensitive"]
MemberKind = Literal["department", "enterprise", "district", "scenario", "hub", "cockpit",
                     "auditor", "consumer"]
SourceKind = Literal["sqlite", "postgres", "mysql", "parquet", "csv"]

_NAME = r"^[a-z][a-z0-9_-]*$"
_DATASET = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"
_COLUMN = r"^[a-z_][a-z0-9_]*$"
_SECRET_KEYS = {"password", "passwd", "secret", "token", "dsn", "uri", "url"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_S = TypeVar("_S", bound=_Strict)


class District(_Strict):
    name: str = Field(pattern=_NAME)
    code: str = Field(pattern=r"^\d{6}$")
    name_zh: str = ""
    title: str = ""


class HubSettings(_Strict):
    """Tunables of one hub; each may be overridden by ``ZHONGSHU_<NAME>`` in the environment."""

    origin: str = Field(default="", description="ledger origin / hub identity, e.g. hub.hangzhou")
    row_cap: int = Field(default=10_000, ge=1, description="rows returned at most per query")
    max_result_bytes: int = Field(default=64 * 2**20, ge=1024,
                                  description="bytes of one answer at most (after the row cap)")
    query_timeout_s: float = Field(default=30.0, gt=0, description="per-query time limit")
    health_interval_s: float = Field(default=5.0, gt=0,
                                     description="how often sources are probed for recovery")
    duckdb_memory_limit: str = Field(default="2GB", description="DuckDB memory_limit")
    duckdb_threads: int = Field(default=2, ge=1, description="DuckDB worker threads")
    plan_cache_size: int = Field(default=4096, ge=0, description="cached query plans")
    duckdb_workers: int = Field(default=2, ge=1, le=64,
                                description="DuckDB worker processes (queries across sources)")
    worker_user: str = Field(default="nobody",
                             description="user the DuckDB workers drop to when the hub runs "
                                         "as root; empty: do not drop")


class WitnessPeer(_Strict):
    """A hub that witnesses this hub's ledger."""

    name: str = Field(description="the witness's key name")
    url: str = Field(description="its submission prefix, e.g. http://hub-xihu:8400/v1/ledger/"
                                 "witness")
    key: str = Field(description="its cosignature/v1 verifier key (`zhongshu ledger key`)")


class WitnessedLog(_Strict):
    """Another hub's ledger that this hub witnesses."""

    origin: str = Field(description="the log's origin line")
    key: str = Field(description="the log's verifier key (`zhongshu ledger key`)")


class LedgerSettings(_Strict):
    """The ledger: every exchange, refusal and governance change on a signed Merkle log."""

    enabled: bool = Field(default=True, description="record exchanges (off: answers carry no "
                                                    "receipt; for benchmarks only)")
    checkpoint_interval_s: float = Field(default=1.0, gt=0, description="a new checkpoint at "
                                         "most this often, when the log grew")
    checkpoint_every: int = Field(default=10_000, ge=1, description="or as soon as this many "
                                  "entries are not yet in a checkpoint")
    max_batch: int = Field(default=8192, ge=1, description="entries committed together at most")
    witnesses: list[WitnessPeer] = Field(default=[], description="hubs asked to cosign")
    quorum: int | None = Field(default=None, ge=1, description="cosignatures that make a "
                               "checkpoint final (default: every witness)")
    witnessing: list[WitnessedLog] = Field(default=[], description="logs this hub witnesses")


class CityInfo(_Strict):
    name: str = Field(pattern=_NAME)
    title: str = ""
    name_zh: str = ""
    code: str = ""


class CityFile(_Strict):
    city: CityInfo
    hub: HubSettings = HubSettings()
    ledger: LedgerSettings = LedgerSettings()
    districts: list[District] = []


class Column(_Strict):
    name: str = Field(pattern=_COLUMN)
    type: str = Field(description="DuckDB type name: VARCHAR, BIGINT, DOUBLE, TIMESTAMP, …")
    classification: Classification = "internal"
    description: str = ""
    expr: str | None = Field(default=None,
                             description="SQL expression over the source table (DuckDB dialect); "
                                         "default: the source column of the same name")


class SourceConfig(_Strict):
    """One department system. Credentials are never written here: ``password_secret`` names
    a secret held in ``secrets.toml`` or the environment."""

    name: str = Field(pattern=_NAME)
    kind: SourceKind
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
                if key.lower() in _SECRET_KEYS:
                    raise ValueError(
                        f"`{key}` must not be written in a member file; set "
                        "`password_secret = \"NAME\"` and put NAME in secrets.toml or in the "
                        "environment variable ZHONGSHU_SECRET_NAME")
        return data

    @model_validator(mode="after")
    def _kind_fields(self) -> SourceConfig:
        if self.kind in ("sqlite", "parquet", "csv") and not self.path:
            raise ValueError(f"a {self.kind} source needs `path` (file or folder, relative to "
                             "the city folder)")
        if self.kind in ("postgres", "mysql") and not self.database:
            raise ValueError(f"a {self.kind} source needs `database`")
        return self


class DatasetConfig(_Strict):
    name: str = Field(pattern=_DATASET, description="namespace.name, e.g. traffic.passages")
    title: str = ""
    description: str = ""
    source: str
    table: str | None = Field(default=None, description="source table (or file stem)")
    query: str | None = Field(default=None, description="a SELECT over the source instead")
    columns: list[Column]
    area_column: str | None = None
    listed: bool = True

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


class MemberInfo(_Strict):
    name: str = Field(pattern=_NAME)
    kind: MemberKind
    title: str = ""
    title_zh: str = ""
    roles: list[str] = []


MaskKind = Literal["redact", "partial", "pseudonym", "generalize", "aggregate_only"]


class Mask(_Strict):
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


class GrantConfig(_Strict):
    """The owner lets ``consumer`` read some columns of its datasets for some purposes."""

    id: str | None = Field(default=None, pattern=_NAME,
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
    def _masks(cls, v: dict[str, Mask | str]) -> dict[str, Mask | str]:
        return {k: (Mask(kind=m) if isinstance(m, str) else m) for k, m in v.items()}


class Lookup(_Strict):
    """Enrich each record with columns of one of the stream owner's own datasets, matched on
    a key (e.g. a camera's segment and direction from ``traffic.checkpoints``); reloaded
    when the hub starts."""

    dataset: str = Field(pattern=_DATASET)
    key: str = Field(pattern=_COLUMN, description="column of the record (or added by an "
                     "earlier lookup) and of the dataset")
    columns: list[Column] = Field(min_length=1, description="columns taken from the dataset "
                                  "(`expr` computes one from the dataset's columns)")


class PairsConfig(_Strict):
    """A derived stream of pairs of consecutive records with the same ``key`` (a vehicle's
    plate) that agree on ``same`` (a road segment) and differ on ``differ`` (its two
    cameras) — the trip between them. Each pair is a record of the later one's columns plus
    ``started_at`` and ``duration_s``; pairs whose ``duration_s / reference`` falls outside
    [``min_ratio``, ``max_ratio``] are outliers (counted, not kept). Aggregates read it by
    its ``name`` like a stream."""

    name: str = Field(pattern=_NAME)
    key: str = Field(pattern=_COLUMN, description="what is followed (e.g. plate)")
    same: str = Field(pattern=_COLUMN, description="both records have the same value")
    differ: str = Field(pattern=_COLUMN, description="the two records have different values")
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


class StreamConfig(_Strict):
    """A department's event stream the hub subscribes to (subscribing is reading)."""

    name: str = Field(pattern=_NAME)
    kind: Literal["mqtt", "nats"]
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


class AggregateConfig(_Strict):
    """A windowed aggregate over a stream, kept by the hub as a dataset of the stream's owner."""

    dataset: str = Field(pattern=_DATASET, description="the dataset it is served as")
    stream: str = Field(description="a stream (or pairs of a stream) of the same member")
    window_s: int = Field(default=60, ge=1, description="tumbling window, seconds")
    lateness_s: int = Field(default=120, ge=0, description="how long after its end a window "
                            "still takes late events (then it is closed)")
    group_by: list[str] = Field(default=[], description="stream columns to group by")
    measures: dict[str, str] = Field(description="name → count(*), sum(col), avg(col), "
                                                 "min(col), max(col) or last(col)")
    where: str | None = Field(default=None, pattern=_COLUMN, description="a boolean column: "
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


class MemberFile(_Strict):
    member: MemberInfo
    sources: list[SourceConfig] = []
    datasets: list[DatasetConfig] = []
    grants: list[GrantConfig] = []
    streams: list[StreamConfig] = []
    aggregates: list[AggregateConfig] = []

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
    ledger: LedgerSettings = LedgerSettings()
    member_files: dict[str, Path]

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


def _line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """Best-effort line number of a pydantic error location inside a TOML text."""
    lines = text.splitlines()
    start, table = 0, ""
    i = 0
    while i < len(loc):
        key = loc[i]
        if isinstance(key, str) and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            table = f"{table}.{key}" if table else key
            header = re.compile(r"^\s*\[\[\s*" + re.escape(table) + r"\s*\]\]")
            seen = -1
            for n in range(start, len(lines)):
                if header.match(lines[n]):
                    seen += 1
                    if seen == loc[i + 1]:
                        start = n
                        break
            else:
                return None
            i += 2
            continue
        if isinstance(key, str):
            pat = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
            for n in range(start, len(lines)):
                if pat.match(lines[n]):
                    return n + 1
            if re.match(r"^\s*\[", lines[start] if start < len(lines) else ""):
                return start + 1
            return None
        i += 1
    return start + 1 if start else None


def _parse(path: Path, model: type[BaseModel]) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read: {e.strerror}", path=str(path)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise ConfigError(f"not valid TOML: {e}", path=str(path),
                          line=int(m.group(1)) if m else None) from None
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err["loc"])
        field = ".".join(str(p) for p in loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key `{loc[-1]}` (check its spelling against docs/configuration.md)"
        elif err["type"] == "missing":
            msg = f"`{loc[-1]}` is required"
        raise ConfigError(f"{field}: {msg}", path=str(path), line=_line_of(text, loc)) from None


def load_city(root: str | os.PathLike[str]) -> City:
    """Load and cross-check a city folder.

    Raises:
        ConfigError: naming the file, the line where possible, and what to change.
    """
    root = Path(root).resolve()
    city_file = root / "city.toml"
    if not city_file.is_file():
        raise ConfigError("no city.toml here; create one with `zhongshu init NAME`",
                          path=str(root))
    cf: CityFile = _parse(city_file, CityFile)
    hub = _env_overrides(cf.hub)
    ledger = _env_overrides(cf.ledger, "ZHONGSHU_LEDGER_")
    members: dict[str, MemberFile] = {}
    files: dict[str, Path] = {}
    for path in sorted((root / "members").glob("*.toml")):
        mf = _with_stream_datasets(_parse(path, MemberFile), path)
        if mf.member.name in members:
            raise ConfigError(f"member `{mf.member.name}` is also declared in "
                              f"{files[mf.member.name].name}", path=str(path))
        members[mf.member.name] = mf
        files[mf.member.name] = path
    city = City(root=root, info=cf.city, hub=hub, districts=cf.districts, members=members,
                member_files=files, ledger=ledger)
    _cross_check(city)
    return city


_MEASURE = re.compile(
    r"^\s*(count|sum|avg|min|max|last)\s*\(\s*(\*|[a-z_][a-z0-9_]*)\s*\)\s*$")


def parse_measure(text: str) -> tuple[str, str | None]:
    """``("count", None)``, ``("avg", "speed_kmh")``… of a measure expression.

    Raises:
        ValueError: not one of count(*), count(col), sum(col), avg(col), min(col), max(col),
            last(col).
    """
    m = _MEASURE.match(text.lower())
    if not m or (m.group(1) != "count" and m.group(2) == "*"):
        raise ValueError(f"measure `{text}`: write count(*), count(col), sum(col), avg(col), "
                         "min(col), max(col) or last(col) (windows merge these exactly as "
                         "events arrive; count(col) counts non-null values; last is the value "
                         "of the latest event by event time)")
    return m.group(1), None if m.group(2) == "*" else m.group(2)


def stream_source(member: str) -> str:
    """Name of the source serving a member's stream windows."""
    return f"{member}-streams"


def is_window_dataset(ds: DatasetConfig, owner: str) -> bool:
    """Whether a dataset is one of ``owner``'s stream aggregates (windows)."""
    return ds.source == stream_source(owner) and not (ds.table or "").startswith("rejected__")


def stream_store(member: str) -> str:
    """Path (relative to the city) of the file holding a member's stream aggregates."""
    return f"streams/{member}.sqlite"


def stream_columns(mf: MemberFile) -> dict[str, list[Column]]:
    """Columns of each stream of a member and of each stream's pairs, by name."""
    out: dict[str, list[Column]] = {}
    for st in mf.streams:
        out[st.name] = st.all_columns()
        for p in st.pairs:
            out[p.name] = p.columns(st.all_columns())
    return out


def _with_stream_datasets(mf: MemberFile, path: Path) -> MemberFile:
    """``mf`` plus, for its stream aggregates, the datasets and the source that serve them
    (the hub's own SQLite file of that member's windows, read like any source)."""
    if not mf.aggregates and not mf.streams:
        return mf
    streams = stream_columns(mf)
    owner = mf.member.name
    datasets = list(mf.datasets)
    for a in mf.aggregates:
        st = streams.get(a.stream)
        if st is None:
            raise ConfigError(f"aggregate `{a.dataset}` reads stream `{a.stream}`, which this "
                              f"member does not declare (streams: {', '.join(streams) or 'none'})",
                              path=str(path), line=_find(path.read_text(), a.dataset))
        types = {c.name: c for c in st}
        cols = [Column(name="window_start", type="TIMESTAMP", classification="public",
                       description="start of the window (event time, UTC)"),
                Column(name="window_end", type="TIMESTAMP", classification="public",
                       description="end of the window (exclusive)")]
        if a.where is not None and a.where not in types:
            raise ConfigError(f"aggregate `{a.dataset}`: where `{a.where}` is not a column of "
                              f"stream `{a.stream}`", path=str(path),
                              line=_find(path.read_text(), a.dataset))
        for g in a.group_by:
            if g not in types:
                raise ConfigError(f"aggregate `{a.dataset}` groups by `{g}`, not a column of "
                                  f"stream `{a.stream}`", path=str(path),
                                  line=_find(path.read_text(), a.dataset))
            cols.append(types[g])
        for name, text in a.measures.items():
            try:
                fn, col = parse_measure(text)
            except ValueError as e:
                raise ConfigError(str(e), path=str(path),
                                  line=_find(path.read_text(), text)) from None
            if col is not None and col not in types:
                raise ConfigError(f"measure `{name}` reads `{col}`, not a column of stream "
                                  f"`{a.stream}`", path=str(path),
                                  line=_find(path.read_text(), text))
            out_type = ("BIGINT" if fn == "count" else
                        types[col].type if fn == "last" and col is not None else "DOUBLE")
            cols.append(Column(name=name, type=out_type,
                               classification=types[col].classification
                               if fn == "last" and col is not None else "internal",
                               description=text))
        cols += a.derived
        datasets.append(DatasetConfig(
            name=a.dataset, title=a.title, description=a.description or
            f"{a.window_s}-second windows over stream {a.stream}", source=stream_source(owner),
            table=a.dataset.replace(".", "__"), columns=cols, area_column=a.area_column,
            listed=a.listed))
    for st in mf.streams:
        datasets.append(DatasetConfig(
            name=f"streams.{owner.replace('-', '_')}__{st.name.replace('-', '_')}__rejected",
            title=f"Rejected messages of stream {st.name}",
            description="malformed messages, sampled, with the reason", source=stream_source(owner),
            table=f"rejected__{st.name.replace('-', '_')}", listed=False, columns=[
                Column(name="received_at", type="TIMESTAMP", classification="internal"),
                Column(name="reason", type="VARCHAR", classification="internal"),
                Column(name="sample", type="VARCHAR", classification="sensitive",
                       description="the start of the message as received")]))
    sources = [*mf.sources, SourceConfig(name=stream_source(owner), kind="sqlite",
                                         path=stream_store(owner))]
    return mf.model_copy(update={"datasets": datasets, "sources": sources})


def _cross_check(city: City) -> None:
    sources: dict[str, str] = {}
    datasets: dict[str, str] = {}
    streams: dict[str, str] = {}
    for name, mf in city.members.items():
        path = city.member_files[name]
        text = path.read_text(encoding="utf-8")
        for stream in stream_columns(mf):
            if stream in streams:
                raise ConfigError(f"stream `{stream}` is already declared by member "
                                  f"`{streams[stream]}`; stream names are city-wide",
                                  path=str(path), line=_find(text, f'"{stream}"'))
            streams[stream] = name
        for s in mf.sources:
            if s.name in sources:
                raise ConfigError(f"source `{s.name}` is already declared by member "
                                  f"`{sources[s.name]}`; source names are city-wide",
                                  path=str(path), line=_find(text, f'"{s.name}"'))
            sources[s.name] = name
        own = {s.name for s in mf.sources}
        for d in mf.datasets:
            if d.source not in own:
                raise ConfigError(f"dataset `{d.name}` uses source `{d.source}`, which this "
                                  "member does not declare (declared: "
                                  f"{', '.join(sorted(own)) or 'none'})",
                                  path=str(path), line=_find(text, f'"{d.source}"'))
            if d.name in datasets:
                raise ConfigError(f"dataset `{d.name}` is already declared by member "
                                  f"`{datasets[d.name]}`", path=str(path),
                                  line=_find(text, f'"{d.name}"'))
            datasets[d.name] = name
    declared = {d.name: d for mf in city.members.values() for d in mf.datasets}
    for name, mf in city.members.items():
        _check_grants(city, name, mf, declared)


def _check_grants(city: City, owner: str, mf: MemberFile,
                  declared: dict[str, DatasetConfig]) -> None:
    path = city.member_files[owner]
    text = path.read_text(encoding="utf-8")
    seen: set[tuple[str, str, str]] = set()
    for g in mf.grants:
        line = _find(text, f'"{g.consumer}"')

        def fail(msg: str, line: int | None = line, consumer: str = g.consumer) -> None:
            raise ConfigError(f"grant to `{consumer}`: {msg}", path=str(path), line=line)

        if g.consumer not in city.members:
            fail(f"no member `{g.consumer}` in this city")
        if g.consumer == owner:
            fail("an owner needs no grant on its own datasets")
        own = {d.name for d in mf.datasets}
        for ds in g.datasets:
            if ds not in own:
                fail(f"`{ds}` is not a dataset of `{owner}`; a member grants only its own "
                     "datasets")
            cols = {c.name for c in declared[ds].columns}
            for col in list(g.columns or []) + list(g.masking):
                if col not in cols and len(g.datasets) == 1:
                    fail(f"`{ds}` has no column `{col}`", _find(text, col))
            for purpose in g.purposes:
                key = (g.consumer, ds, purpose)
                if key in seen:
                    fail(f"`{ds}` is granted twice for purpose `{purpose}`; merge the grants")
                seen.add(key)
        if isinstance(g.row_scope, dict):
            for ds in g.row_scope:
                if ds not in g.datasets:
                    fail(f"row_scope names `{ds}`, which this grant does not cover")


def _find(text: str, needle: str) -> int | None:
    for n, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return n
    return None


def _env_overrides(settings: _S, prefix: str = "ZHONGSHU_") -> _S:
    """``settings`` with each scalar setting replaced by ``<PREFIX><NAME>`` if set."""
    data = settings.model_dump()
    for key, value in data.items():
        env = os.environ.get(f"{prefix}{key.upper()}")
        if env is not None and not isinstance(value, (list, dict)):
            data[key] = env
    try:
        return type(settings).model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        raise ConfigError(f"environment variable {prefix}{str(err['loc'][0]).upper()}: "
                          f"{err['msg']}") from None


def read_secret(city_root: Path, name: str) -> str:
    """The value of secret ``name``: ``ZHONGSHU_SECRET_<NAME>`` or ``secrets.toml``.

    Raises:
        ConfigError: when the secret is set nowhere (the message never shows a value).
    """
    env_name = "ZHONGSHU_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()
    if env_name in os.environ:
        return os.environ[env_name]
    path = city_root / "secrets.toml"
    if path.is_file():
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        value = data.get("secrets", {}).get(name)
        if value is not None:
            return str(value)
    raise ConfigError(f"secret `{name}` is not set: add it to secrets.toml under [secrets] or "
                      f"set {env_name}", path=str(path))
