"""The protocol's request and answer bodies (their JSON Schemas are in the OpenAPI document).

A receipt's wire form is the ledger's own (:class:`zhongshu.ledger.ReceiptJSON`, what
``Receipt.to_dict()`` gives): defined once, there.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from zhongshu.ledger import ReceiptJSON as Receipt
from zhongshu.query.service import MAX_SQL_CHARS

ARROW_STREAM = "application/vnd.apache.arrow.stream"


class ErrorBody(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. `column_not_granted`")
    message: str = Field(description="what went wrong and what to do, for a person")


class ErrorOut(BaseModel):
    error: ErrorBody
    receipt: Receipt | None = None
    upstream_receipts: list[dict[str, Any]] | None = Field(
        default=None, description="over datasets of peer hubs: the receipts of the peers' "
        "answers it was built from (`{hub, ledger, index, entry_hash, result_sha256, "
        "dataset}`)")
    partial: list[dict[str, str]] | None = Field(
        default=None, description="with `allow_partial`: the peer hubs missing from the "
        "answer (`{hub, code, message}`)")


class HealthSummary(BaseModel):
    sources_up: int = Field(description="sources answering")
    sources_down: int = Field(description="sources not answering")
    ledger: Literal["ok", "unready", "none"] = Field(
        description='"unready": the ledger cannot record or sign; "none": the city runs none')
    finality: Literal["final", "pending", "lost", "none"] = Field(
        description="whether the newest checkpoint is cosigned by the witnesses' quorum "
                    '("lost": too many refuse or cannot be reached; "none": no witness)')
    second_wall: Literal["held", "lost"] = Field(
        description='whether query execution is confined to the sources ("lost": the hub '
                    "was started with --unsafe-single-wall where it cannot be)")
    lost: list[str] = Field(description='the guarantees lost: "recording", "finality", '
                                        '"second_wall"')


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        default="ok", description='"degraded" while a guarantee is lost (the ledger cannot '
                                  "record and sign, checkpoints cannot become final, or "
                                  "query execution is not confined to the sources)")
    summary: HealthSummary = Field(description="counts and states, for every member")
    sources: dict[str, str] | None = Field(
        default=None, description='operators and auditors only: source → "ok" or '
                                  '"down: REASON" (a reason from a closed set)')
    ledger: dict[str, Any] | None = Field(
        default=None, description="operators and auditors only: recording, signing, size, "
                                  "checkpoint_size, checkpoint_age_s, cosigned, quorum, "
                                  "finality, refused_to_sign, witnesses (name → state); "
                                  'on replicas sharing one log, sequencer ("leading": '
                                  'this replica signs, or "following")')
    second_wall: dict[str, Any] | None = Field(
        default=None, description="operators and auditors only: held, confinement (what "
                                  "confines the DuckDB workers), runs_as, problem")
    peers: dict[str, str] | None = Field(
        default=None, description="operators and auditors only, when the hub is federated: "
                                  'peer hub → "ok", "degraded: …" (its last catalog refresh '
                                  'failed), "stale" (its catalog expired) or "down: …"')
    streams: dict[str, dict[str, Any]] | None = Field(
        default=None, description="operators and auditors only, when the hub ingests streams: "
                                  "stream → state (connected, disconnected, direct; standby on "
                                  "a replica another folds for), messages, records, rejected, "
                                  "last_message_age_s")
    config: dict[str, Any] | None = Field(
        default=None, description="operators and auditors only, when the hub follows its "
                                  "city folder: loaded_at, reloads, watching, refused (the "
                                  "last refused change: error with file and line, at), "
                                  "restart_needed (changes a reload does not apply)")


class ColumnOut(BaseModel):
    name: str
    type: str
    classification: Literal["public", "internal", "personal", "sensitive"]
    description: str = ""


class DatasetOut(BaseModel):
    name: str
    owner: str
    title: str
    description: str
    columns: list[ColumnOut]
    area_column: str | None
    access: Literal["none", "partial", "full"]
    status: Literal["ok", "unavailable"] = "ok"


class GrantOut(BaseModel):
    id: str
    columns: list[str]
    purposes: list[str]
    masking: dict[str, str] = {}
    row_scope: str | None = None
    expires: str | None = None
    rate_limit: int | None = None
    dimensions: list[str] = Field(default=[], description="an aggregate dataset's dimensions")
    k: int | None = Field(default=None, description="an aggregate dataset's group-size floor "
                                                    "(distinct subjects)")
    lookups_per_day: int = Field(default=100, description="distinct pseudonymised values "
                                                          "looked up per purpose in 24 h")


class DatasetDetailOut(DatasetOut):
    grants: list[GrantOut]


class QueryArrowIn(BaseModel):
    """A query answered as Arrow only (``POST /v1/query/arrow``): no ``format`` to choose."""

    model_config = ConfigDict(extra="forbid")
    # the cap is the query service's, answered ``413 query_too_large`` there for every entry
    # point (query, explain, subscribe): a too-long text is not an invalid request (400)
    sql: str = Field(min_length=1,
                     description=f"one SELECT over dataset names (DuckDB dialect), at most "
                                 f"{MAX_SQL_CHARS:,} characters (longer: `413 query_too_large`)")
    purpose: str = Field(min_length=1, max_length=200, description="why the data is needed")
    # bounded to what RFC 8785 can write: the query's hash is over it
    limit: int | None = Field(default=None, ge=1, le=2**53 - 1,
                              description="at most this many rows")
    allow_partial: bool = Field(
        default=False, description="over datasets of peer hubs: answer from the peers that "
        "answer, naming the others in `partial` (default: fail with `503 peer_unavailable`)")


class QueryIn(QueryArrowIn):
    model_config = ConfigDict(extra="ignore")
    format: Literal["json", "arrow"] = Field(
        default="json", description="`json`: the JSON answer; `arrow`: an Arrow IPC stream")


class SessionIn(BaseModel):
    token: str = Field(min_length=1, max_length=500, description="a member token")


class SessionOut(BaseModel):
    member: str
    kind: str
    title: str
    expires: float | None = Field(description="epoch seconds (null: not a cookie session)")


class GrantIn(BaseModel):
    """A grant as a data owner makes it (the same keys as ``[[grants]]`` in a member file)."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    consumer: str
    datasets: list[str] = Field(min_length=1)
    purposes: list[str] = Field(min_length=1)
    columns: list[str] | None = None
    masking: dict[str, Any] = {}
    row_scope: str | dict[str, str] | None = None
    expires: str | None = Field(default=None, description="ISO 8601 time")
    rate_limit: int | None = Field(default=None, ge=1)
    dimensions: list[str] | None = Field(
        default=None, description="aggregate-only grants: the columns a caller may group and "
                                  "filter by")
    subject: str | None = Field(default=None, description="aggregate-only grants: the column "
                                "naming whom a row is about (k counts distinct subjects)")
    lookups_per_day: int | None = Field(
        default=None, ge=0, description="distinct pseudonym values the consumer may look up "
                                        "per purpose in 24 h (default 100)")


class ResultColumn(BaseModel):
    name: str
    type: str = Field(description="DuckDB's name of the column's SQL type")
    encoding: Literal["string"] | None = Field(
        default=None, description='"string": the column\'s integers are sent as strings in '
                                  "this answer (one of them is beyond ±(2^53 − 1), which JSON "
                                  "numbers cannot carry exactly); absent otherwise")


class QueryOut(BaseModel):
    columns: list[ResultColumn]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    row_scope: list[dict[str, str]] = Field(
        description="datasets whose rows the caller's grants limited, and how")
    receipt: Receipt | None = None
