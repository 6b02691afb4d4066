"""The protocol's OpenAPI document, as generated clients and linters read it, and its docs page.

FastAPI writes the document from the routes; :func:`finish` makes it the contract:

- **security**: the ways in (``protocol.auth``: bearer token, RFC 9421 signature, browser
  session, a person's ID token) are security schemes, and every operation says which admit
  it — the public ones say ``security: []``;
- **errors**: every operation lists only the statuses the hub sends, each with the error body
  (``ErrorOut``). FastAPI's automatic ``422`` is not one of them: the hub answers an invalid
  request ``400 bad_request`` (``protocol.handlers``), so an operation with validated input
  documents ``400`` instead. Every operation may answer ``500 internal``;
- **the description** says what a client needs (identity, receipts, errors) without
  pointing at files outside the package.

``/v1/docs`` is Swagger UI from files vendored into the package (``static/swagger-ui``,
``swagger-ui-dist`` :data:`SWAGGER_UI_VERSION`, licence beside it): the page needs no
network beyond the hub.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

Responses = dict[int | str, dict[str, Any]]

SWAGGER_UI = Path(__file__).with_name("static") / "swagger-ui"
SWAGGER_UI_VERSION = "5.35.0"
DOCS = "/v1/docs"
OPENAPI = "/v1/openapi.json"

#: what each error status means here (the codes are ``zhongshu.errors``')
STATUSES: dict[int, str] = {
    400: "a bad request: invalid parameters or body (`bad_request`), or SQL the hub refuses "
         "(`sql_syntax`, `statement_not_allowed`, `function_not_allowed`, …)",
    401: "no valid identity (`unauthenticated`); counted, not recorded",
    403: "a known caller not allowed this (`forbidden`, `column_not_granted`, "
         "`purpose_not_granted`, `on_behalf_refused`, …); recorded, with its receipt",
    404: "nothing there that the caller may see (`dataset_not_found`, `not_found`)",
    413: "too large: the SQL text (`query_too_large`) or the answer (`result_too_large`)",
    429: "too many requests (`rate_limited`, `lookup_budget_exceeded`)",
    500: "an unexpected error (`internal`; the message holds no internals)",
    503: "the hub cannot answer now (`source_unavailable`, `ledger_unavailable`, "
         "`peer_unavailable`, `dataset_unavailable`); retry later",
    504: "the query ran past its time limit (`query_timeout`)",
}

#: what the ``caller`` dependency itself may answer (``protocol.auth``)
AUTHENTICATED = (401, 403)

DESCRIPTION = """\
The hub protocol of Zhongshu (中枢), version 1: governed SQL over the datasets of a city's \
departments, every exchange written to a tamper-evident ledger.

**Identity.** Members send `Authorization: Bearer <token>`, or sign requests with HTTP \
Message Signatures (RFC 9421, Ed25519; required for members of kind `hub`); browsers \
exchange a token once for a session cookie (`POST /v1/session`). People (a driver, a \
patient) send their OpenID Connect ID token on `/v1/me/…`. No valid identity: `401`. \
A scenario member acting for someone names them in `Zhongshu-On-Behalf-Of` (a member) or \
forwards their ID token in `Zhongshu-On-Behalf-Of-Person`.

**Queries.** `POST /v1/query` answers one `SELECT` over dataset names (`traffic.passages`) \
for a stated purpose, as JSON (`format: json`) or as an Arrow IPC stream (`format: arrow`, \
`application/vnd.apache.arrow.stream`); `POST /v1/query/arrow` is the same exchange, always \
Arrow. JSON columns carry their SQL `type`; integers that may exceed 2^53 are sent as \
strings and their column says `"encoding": "string"`.

**Receipts.** Every answer is sent once its ledger entry is durable, and carries its \
receipt `{"ledger", "index", "entry_hash"}` (in the body, or the `Zhongshu-Receipt` header \
for Arrow). The entry holds the SHA-256 of the exact result bytes (the JSON `rows` in RFC \
8785 canonical form, or the Arrow stream). Checkpoints and proofs under `/v1/ledger/` are \
public: anyone can check offline that an exchange was recorded and never altered.

**Errors.** Every error is `{"error": {"code", "message"}, "receipt"?}` with a stable \
`code`; a refusal of a known caller is recorded and carries its receipt.
"""


def errors(*statuses: int) -> Responses:
    """The documented error answers for ``statuses`` (each with the protocol's error body)."""
    from zhongshu.protocol.models import ErrorOut

    return {s: {"model": ErrorOut, "description": STATUSES[s]} for s in statuses}


def finish(spec: dict[str, Any]) -> dict[str, Any]:
    """Make FastAPI's document the protocol's contract (see the module's docstring)."""
    spec["info"]["license"] = {"name": "Apache-2.0", "identifier": "Apache-2.0"}
    spec["servers"] = [{"url": "/", "description": "this hub"}]
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    error_ref = {"$ref": "#/components/schemas/ErrorOut"}
    for ops in spec.get("paths", {}).values():
        for op in ops.values():
            responses = op.setdefault("responses", {})
            if responses.pop("422", None) is not None and _validated(op):
                responses.setdefault("400", {"description": STATUSES[400]})
            responses.setdefault("500", {"description": STATUSES[500]})
            for status, answer in responses.items():
                if status[0] in "45" and not answer.get("content"):
                    answer["content"] = {"application/json": {"schema": error_ref}}
            op.setdefault("security", [])  # public: said, not left to a default
            op["responses"] = dict(sorted(responses.items()))
    if "ErrorOut" not in schemas:  # only public operations: add the body they refer to
        from zhongshu.protocol.models import ErrorOut

        body = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(body.pop("$defs", {}))
        schemas["ErrorOut"] = body
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return spec


def _validated(op: dict[str, Any]) -> bool:
    """Whether FastAPI can refuse the operation's input (``400`` here): it has a body, a
    required query or header parameter, or a parameter that is not any string (a path
    parameter is always there; a plain string cannot be invalid)."""
    if "requestBody" in op:
        return True
    for p in op.get("parameters", []):
        if p["in"] != "path" and p.get("required"):
            return True
        if set(p.get("schema", {})) - {"title", "description"} != {"type"} or \
                p["schema"]["type"] != "string":
            return True
    return False


def install(app: FastAPI) -> None:
    """Serve the finished document at ``/v1/openapi.json`` (``app`` built with that
    ``openapi_url`` and ``docs_url=None``) and Swagger UI at ``/v1/docs``. The document is
    built on first use, as FastAPI does, so routes mounted later (the cockpit, the
    scenarios) are in it."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = finish(get_openapi(
                title=app.title, version=app.version, openapi_version=app.openapi_version,
                description=app.description, routes=app.routes, tags=app.openapi_tags))
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]
    static = f"{DOCS}/static"
    app.mount(static, StaticFiles(directory=SWAGGER_UI), name="swagger-ui")

    @app.get(DOCS, include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI, title=f"{app.title} — Swagger UI",
            swagger_js_url=f"{static}/swagger-ui-bundle.js",
            swagger_css_url=f"{static}/swagger-ui.css",
            swagger_favicon_url=f"{static}/favicon-32x32.png", oauth2_redirect_url=None)
