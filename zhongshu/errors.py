"""One error hierarchy for the hub, the protocol and the CLI.

Every error carries a stable machine-readable ``code`` and the HTTP ``status`` the protocol
answers with; the message is written for the person who has to act on it and never contains
data values, secrets or source internals.

    ZhongshuError (500, internal)
    ├── ConfigError (ValueError)                 config_invalid      — a city file is wrong
    ├── Unauthenticated                          unauthenticated     401
    ├── Refused                                                      403 — known caller, not allowed
    │   ├── Forbidden                            forbidden
    │   ├── ColumnNotGranted                     column_not_granted
    │   ├── PurposeNotGranted                    purpose_not_granted
    │   ├── CallerNotDeclared                    caller_not_declared — not a declared caller
    │   │                                                              of a scenario's service
    │   ├── BehalfRefused                        on_behalf_refused   — "on behalf of" refused
    │   ├── NotYourData                          not_your_data       — a person asked about
    │   │                                                              someone else
    │   └── ConsentRequired                      consent_required    — no consent in force
    ├── DatasetNotFound (LookupError)            dataset_not_found   404
    ├── BadQuery (ValueError)                                        400 — the SQL itself
    │   ├── SqlSyntax                            sql_syntax
    │   ├── StatementNotAllowed                  statement_not_allowed
    │   ├── FunctionNotAllowed                   function_not_allowed
    │   ├── ColumnNotFound                       column_not_found
    │   ├── QueryInvalid                         query_invalid       — the engine refused it
    │   └── TypeNotSupported                     type_not_supported  — a result column's type
    ├── BadRequest (ValueError)                  bad_request         400
    ├── RateLimited                              rate_limited        429
    ├── LookupBudgetExceeded                     lookup_budget_exceeded 429 — distinct lookups a day
    ├── ResultTooLarge                           result_too_large    413
    ├── QueryTooLarge                            query_too_large     413 — the SQL text itself
    ├── QueryTimeout (TimeoutError)              query_timeout       504
    ├── SourceUnavailable                        source_unavailable  503 (transient)
    │   └── SourceBusy                           source_unavailable  503 — at its concurrency cap
    ├── DatasetUnavailable                       dataset_unavailable 503 (schema drift)
    ├── PeerUnavailable                          peer_unavailable    503 — a peer hub cannot
    │                                                              answer (down, slow, stale)
    ├── StoreUnavailable                         store_unavailable   503 — the hub's own store
    │   └── StoreOutdated                        store_outdated      — its schema is older
    │                                                                  than the code
    └── NotFound (LookupError)                   not_found           404
"""

from __future__ import annotations


class ZhongshuError(Exception):
    """Base of every error the hub raises on purpose.

    Attributes:
        code: stable identifier clients may branch on.
        status: HTTP status the protocol answers with.
        transient: True when retrying later may succeed.
    """

    code = "internal"
    status = 500
    transient = False
    #: the datasets of the governed query the failure happened in, once it had a plan (the
    #: caller is granted them): recorded with the refusal, so their owners see failed uses
    datasets: tuple[str, ...] = ()
    #: the peer hub the error comes from (a federated query: its refusal forwarded, or it
    #: is unavailable); "" for this hub's own
    hub: str = ""

    def __init__(self, message: str = "internal error") -> None:
        super().__init__(message)

    @property
    def message(self) -> str:
        """The human message (never data, secrets or internals)."""
        return str(self.args[0]) if self.args else self.code

    def to_dict(self) -> dict[str, str]:
        """The protocol's error body: ``{"code", "message"}``."""
        return {"code": self.code, "message": self.message}


class ConfigError(ValueError, ZhongshuError):
    """A city configuration file is invalid; the message names the file, line and fix."""

    code = "config_invalid"
    status = 500

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 dataset: str | None = None) -> None:
        where = ""
        if path:
            where = f"{path}:{line}: " if line else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line
        #: the dataset whose own definition is refused, when it is one
        self.dataset = dataset


class Unauthenticated(ZhongshuError):
    code = "unauthenticated"
    status = 401


class Refused(ZhongshuError):
    """A known caller asked for something it is not allowed to have."""

    status = 403
    code = "forbidden"


class Forbidden(Refused):
    code = "forbidden"


class ColumnNotGranted(Refused):
    code = "column_not_granted"


class PurposeNotGranted(Refused):
    code = "purpose_not_granted"


class CallerNotDeclared(Refused):
    """The caller is not declared in the scenario member's ``[[callers]]`` for the service."""

    code = "caller_not_declared"


class BehalfRefused(Refused):
    """A request names a caller it acts for, and the hub does not accept it: the asker is not
    a scenario member, or the named caller is unknown or not declared for that scenario."""

    code = "on_behalf_refused"


class NotYourData(Refused):
    """A request made for a person reads data about another person (another plate, another
    id number), or rows not narrowed to the person's own identifiers."""

    code = "not_your_data"
    #: subject tags of the identifiers asked about (recorded, so their persons see the try)
    subjects: tuple[str, ...] = ()


class ConsentRequired(Refused):
    """A person calls a service that needs their consent, and none is in force."""

    code = "consent_required"


class DatasetNotFound(LookupError, ZhongshuError):
    code = "dataset_not_found"
    status = 404


class NotFound(LookupError, ZhongshuError):
    code = "not_found"
    status = 404


class BadQuery(ValueError, ZhongshuError):
    code = "bad_query"
    status = 400


class SqlSyntax(BadQuery):
    code = "sql_syntax"


class StatementNotAllowed(BadQuery):
    code = "statement_not_allowed"


class FunctionNotAllowed(BadQuery):
    code = "function_not_allowed"


class ColumnNotFound(BadQuery):
    code = "column_not_found"


class QueryInvalid(BadQuery):
    """The engine could not run an allowed query (a type error, a bad cast…)."""

    code = "query_invalid"


class TypeNotSupported(BadQuery):
    """A result column has a type the hub cannot encode faithfully; the message names the
    column and the cast that makes it encodable."""

    code = "type_not_supported"


class BadRequest(ValueError, ZhongshuError):
    code = "bad_request"
    status = 400


class RateLimited(ZhongshuError):
    code = "rate_limited"
    status = 429
    transient = True


class LookupBudgetExceeded(ZhongshuError):
    """Over the distinct pseudonym lookups a day; not a ``RateLimited``: waiting a second
    does not help, and a client must not retry it in a loop."""

    code = "lookup_budget_exceeded"
    status = 429


class ResultTooLarge(ZhongshuError):
    code = "result_too_large"
    status = 413


class QueryTooLarge(ZhongshuError):
    """The SQL text is longer than the hub accepts (``query.service.MAX_SQL_CHARS``)."""

    code = "query_too_large"
    status = 413


class QueryTimeout(TimeoutError, ZhongshuError):
    code = "query_timeout"
    status = 504
    transient = True


class SourceUnavailable(ZhongshuError):
    code = "source_unavailable"
    status = 503
    transient = True


class SourceBusy(SourceUnavailable):
    """The source is at its concurrency cap (same protocol code: try again shortly)."""


class DatasetUnavailable(ZhongshuError):
    code = "dataset_unavailable"
    status = 503


class PeerUnavailable(ZhongshuError):
    """A peer hub (a district hub) cannot answer now: unreachable, too slow, its circuit
    breaker open, its catalog stale or its answer malformed. ``hub`` names it."""

    code = "peer_unavailable"
    status = 503
    transient = True

    def __init__(self, message: str = "a peer hub is unavailable", hub: str = "") -> None:
        super().__init__(message)
        self.hub = hub


class LedgerInvalid(ValueError, ZhongshuError):
    """A checkpoint, proof, key, receipt or ledger file that does not parse or verify."""

    code = "ledger_invalid"
    status = 400


class LedgerUnavailable(ZhongshuError):
    """The ledger cannot record now (disk full, locked, closed): nothing is answered unrecorded."""

    code = "ledger_unavailable"
    status = 503
    transient = True


class StoreUnavailable(ZhongshuError):
    """The hub's own store (PostgreSQL) cannot be reached or used; the message names it by
    host, port and database only, never by its password."""

    code = "store_unavailable"
    status = 503
    transient = True


class StoreOutdated(StoreUnavailable):
    """The store's schema is older than this hub's code: ``zhongshu db upgrade`` brings it up
    to date (a hub never migrates it on its own)."""

    code = "store_outdated"
    transient = False


class SecondWallUnavailable(ZhongshuError):
    """The DuckDB workers could not be confined to their sources (``zhongshu.query.wall``):
    the hub does not serve on the firewall alone unless told to (``--unsafe-single-wall``)."""

    code = "second_wall_unavailable"
    status = 503
