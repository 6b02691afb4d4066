"""NGSI-LD errors as ProblemDetails (IETF RFC 7807, GS CIM 009 §5.5.2): ``type`` one of
the spec's error URIs (``about:blank`` where the spec has none, the status then saying it
all), ``title``, ``status``, ``detail``; and the hub's own stable ``code`` (and the
refusal's ``receipt``, when it was recorded) as extension members."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from zhongshu.errors import ZhongshuError
from zhongshu.ledger import ReceiptJSON

ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
MEDIA = "application/json"  # the spec's media type for ProblemDetails bodies

#: the hub's error codes → the spec's error types
_TYPES = {"bad_request": "BadRequestData", "sql_syntax": "BadRequestData",
          "query_invalid": "BadRequestData", "column_not_found": "BadRequestData",
          "function_not_allowed": "BadRequestData", "statement_not_allowed": "BadRequestData",
          "invalid_request": "InvalidRequest", "not_found": "ResourceNotFound",
          "dataset_not_found": "ResourceNotFound", "result_too_large": "TooManyResults",
          "query_too_large": "TooComplexQuery", "internal": "InternalError",
          "ledger_unavailable": "InternalError"}
_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 406: "Not Acceptable", 413: "Content Too Large",
           429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable",
           504: "Gateway Timeout"}


class InvalidRequest(ZhongshuError):
    """The request itself is malformed (an unknown parameter, a body that is no JSON)."""

    code = "invalid_request"
    status = 400


class MethodNotAllowed(ZhongshuError):
    """A write to this read-only face."""

    code = "method_not_allowed"
    status = 405

    def __init__(self, message: str, allow: str) -> None:
        super().__init__(message)
        self.allow = allow


class NotAcceptable(ZhongshuError):
    """None of the media types the request accepts is offered."""

    code = "not_acceptable"
    status = 406


def problem(exc: ZhongshuError, receipt: ReceiptJSON | None = None) -> Response:
    """The ProblemDetails answer for ``exc``."""
    kind = _TYPES.get(exc.code)
    body: dict[str, Any] = {"type": ERRORS + kind if kind else "about:blank",
                            "title": _TITLES.get(exc.status, "Error"), "status": exc.status,
                            "detail": exc.message, "code": exc.code}
    headers: dict[str, str] = {}
    if receipt is not None:
        body["receipt"] = receipt
        headers["Zhongshu-Receipt"] = orjson.dumps(receipt).decode()
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = exc.allow
    return Response(orjson.dumps(body), status_code=exc.status, media_type=MEDIA,
                    headers=headers)
