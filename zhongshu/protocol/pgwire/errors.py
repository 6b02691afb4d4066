"""The protocol's error codes as SQLSTATEs, in one place.

A refusal keeps the protocol's message; its stable code travels in the error's detail
(``code: column_not_granted``) and, when the refusal was recorded, its receipt too.
"""

from __future__ import annotations

SQLSTATE: dict[str, str] = {
    "unauthenticated": "28P01",          # invalid_password
    "forbidden": "42501",                # insufficient_privilege
    "column_not_granted": "42501",
    "purpose_not_granted": "42501",
    "caller_not_declared": "42501",
    "on_behalf_refused": "42501",
    "not_your_data": "42501",
    "consent_required": "42501",
    "function_not_allowed": "42501",
    "statement_not_allowed": "42501",
    "dataset_not_found": "42P01",        # undefined_table
    "column_not_found": "42703",         # undefined_column
    "sql_syntax": "42601",               # syntax_error
    "bad_query": "42000",
    "query_invalid": "42000",
    "bad_request": "08P01",              # protocol_violation
    "type_not_supported": "0A000",       # feature_not_supported
    "query_timeout": "57014",            # query_canceled
    "rate_limited": "53400",             # configuration_limit_exceeded
    "lookup_budget_exceeded": "53400",
    "query_too_large": "54000",          # program_limit_exceeded
    "result_too_large": "54000",
    "source_unavailable": "57P03",       # cannot_connect_now
    "dataset_unavailable": "57P03",
    "peer_unavailable": "57P03",
    "ledger_unavailable": "57P03",
    "setting_unknown": "42704",          # undefined_object
    "internal": "XX000",
}


def sqlstate(code: str) -> str:
    """The SQLSTATE of a protocol error code (``XX000`` for one not listed)."""
    return SQLSTATE.get(code, "XX000")
