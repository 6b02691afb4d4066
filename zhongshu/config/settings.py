"""Tunables of one hub (``[hub]``, ``[ledger]`` and ``[store]`` of ``city.toml``), each
overridable from the environment (``ZHONGSHU_<NAME>``, ``ZHONGSHU_LEDGER_<NAME>``,
``ZHONGSHU_STORE_<NAME>``)."""

from __future__ import annotations

import os
from typing import TypeVar

from pydantic import Field, ValidationError, field_validator

from zhongshu.config._base import Strict
from zhongshu.errors import ConfigError

_S = TypeVar("_S", bound=Strict)


class HubSettings(Strict):
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
    subscribe_rate_limit: int = Field(default=30, ge=1,
                                      description="subscriptions one member may open per "
                                                  "minute (each push also spends the "
                                                  "grants' own rate limits)")
    metrics_names: bool = Field(default=False,
                                description="label /metrics by source and witness name "
                                            "(default: counts by state only; /metrics is "
                                            "public, and names of unlisted sources leak)")
    worker_user: str = Field(default="nobody",
                             description="user the DuckDB workers drop to when the hub runs "
                                         "as root; empty: do not drop")
    pg_port: int = Field(default=0, ge=0, le=65535,
                         description="port of the PostgreSQL wire endpoint for BI tools "
                                     "(user = member, password = token, database = purpose); "
                                     "0: not served (`zhongshu serve --pg-port N`)")
    pg_require_tls: bool = Field(default=False,
                                 description="the wire endpoint takes passwords over TLS only, "
                                             "loopback included — set it on replicas behind a "
                                             "load balancer on their machine, whose clients "
                                             "all arrive from loopback")
    pg_tls_cert: str = Field(default="",
                             description="PEM certificate of the wire endpoint's TLS (default: "
                                         "a self-signed one made in state/pg-tls.crt)")
    pg_tls_key: str = Field(default="", description="PEM key of pg_tls_cert (default: "
                                                    "state/pg-tls.key)")
    ingest_streams: bool = Field(default=True,
                                 description="this process subscribes to the city's declared "
                                             "streams and folds them into its windows (with "
                                             "the state in PostgreSQL, the replicas share "
                                             "them: one folds, the others stand by; false "
                                             "keeps a replica out of that)")
    unsafe_single_wall: bool = Field(default=False,
                                     description="serve even where the DuckDB workers cannot "
                                                 "be confined to their sources (no Landlock): "
                                                 "the firewall is then the only wall")


class WitnessPeer(Strict):
    """A hub that witnesses this hub's ledger."""

    name: str = Field(description="the witness's key name")
    url: str = Field(description="its submission prefix, e.g. http://hub-xihu:8400/v1/ledger/"
                                 "witness")
    key: str = Field(description="its cosignature/v1 verifier key (`zhongshu ledger key`)")


class WitnessedLog(Strict):
    """Another hub's ledger that this hub witnesses."""

    origin: str = Field(description="the log's origin line")
    key: str = Field(description="the log's verifier key (`zhongshu ledger key`)")


class LedgerSettings(Strict):
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
    log_key: str = Field(default="", description="this hub's log key (vkey) pinned: the hub "
                         "refuses another and `ledger verify --dir` checks against it "
                         "(default: the key recorded in ledger.pin at first start)")


class StoreSettings(Strict):
    """Where the hub keeps its own state and ledger: SQLite files in ``state/`` (the
    default), or one PostgreSQL database shared by every replica of the hub."""

    url: str = Field(default="", description="the hub's state and ledger in PostgreSQL, "
                     "e.g. postgresql://hub@db.example:5432/zhongshu (empty: SQLite files "
                     "in state/); its schema is made by `zhongshu db upgrade`")
    password_secret: str = Field(default="", description="the secret (secrets.toml or "
                                 "ZHONGSHU_SECRET_<NAME>) holding the store's password, so "
                                 "that the url in city.toml holds none")
    pool_size: int = Field(default=16, ge=1, le=100, description="connections to the store "
                           "at most per hub process")
    windows_user: str = Field(default="", pattern=r"^([a-z_][a-z0-9_]*)?$",
                              description="the role the query workers read the stream windows "
                              "as (SELECT on the window schemas only, granted by the hub; "
                              "empty: the store's user, without its password — for a store "
                              "that trusts local connections)")
    windows_password_secret: str = Field(default="", description="the secret holding "
                                         "windows_user's password")

    @field_validator("url")
    @classmethod
    def _postgresql(cls, url: str) -> str:
        if url and not url.startswith(("postgresql://", "postgres://")):
            raise ValueError("a store url starts with postgresql:// (leave it empty for the "
                             "embedded SQLite files)")
        return url


def env_overrides(settings: _S, prefix: str = "ZHONGSHU_") -> _S:
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
