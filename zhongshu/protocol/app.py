"""The hub protocol, v1: a FastAPI application over the query service.

The OpenAPI document at ``/v1/openapi.json`` is the protocol's full description and agrees
with ``PROTOCOL.md``. Every error is ``{"error": {"code", "message"}, "receipt"?}``.
"""

import logging
import time
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import orjson
from fastapi import Depends, FastAPI, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

import zhongshu
from zhongshu.catalog.catalog import Dataset
from zhongshu.errors import (
    BadRequest,
    DatasetNotFound,
    LedgerUnavailable,
    NotFound,
    ResultTooLarge,
    SourceBusy,
    Unauthenticated,
    ZhongshuError,
)
from zhongshu.ledger import Ledger, entry
from zhongshu.policy.grants import Grants
from zhongshu.policy.identity import Authenticator, Caller
from zhongshu.protocol import encode
from zhongshu.protocol.ledger_routes import add_ledger_routes
from zhongshu.protocol.metrics import Metrics
from zhongshu.protocol.sessions import COOKIE, SESSION_S, Sessions
from zhongshu.protocol.signatures import Message, Verifier
from zhongshu.protocol.subscribe import add_subscribe_route
from zhongshu.query.service import Lookup, QueryService, Result
from zhongshu.stores import NonceStore, SessionStore

log = logging.getLogger("zhongshu.protocol")
refusals = logging.getLogger("zhongshu.refusals")
ARROW_STREAM = "application/vnd.apache.arrow.stream"


class ErrorBody(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. `column_not_granted`")
    message: str = Field(description="what went wrong and what to do, for a person")


class Receipt(BaseModel):
    ledger: str = Field(description="ledger origin")
    index: int = Field(description="index of the exchange's entry")
    entry_hash: str = Field(description="hex RFC 9162 leaf hash of the entry")


class ErrorOut(BaseModel):
    error: ErrorBody
    receipt: Receipt | None = None


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"
    sources: dict[str, str] = Field(description='source → "ok" or "down: REASON"')


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


class DatasetDetailOut(DatasetOut):
    grants: list[GrantOut]


class QueryIn(BaseModel):
    sql: str = Field(min_length=1, max_length=100_000,
                     description="one SELECT over dataset names (DuckDB dialect)")
    purpose: str = Field(min_length=1, max_length=200, description="why the data is needed")
    format: Literal["json", "arrow"] = "json"
    limit: int | None = Field(default=None, ge=1, description="at most this many rows")


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


class ResultColumn(BaseModel):
    name: str
    type: str


class QueryOut(BaseModel):
    columns: list[ResultColumn]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    row_scope: list[dict[str, str]] = Field(
        description="datasets whose rows the caller's grants limited, and how")
    receipt: Receipt | None = None


def _dataset_out(ds: Dataset, caller: Caller, grants: Grants) -> dict[str, Any]:
    return {"name": ds.name, "owner": ds.owner, "title": ds.config.title,
            "description": ds.config.description,
            "columns": [{"name": c.name, "type": c.type, "classification": c.classification,
                         "description": c.description} for c in ds.columns],
            "area_column": ds.config.area_column,
            "access": grants.level(caller, ds),
            "status": "ok" if ds.status == "ok" else "unavailable"}


def create_app(service: QueryService, ledger: Ledger | None, *, sessions: SessionStore,
               nonces: NonceStore) -> FastAPI:
    """The protocol application serving ``service``.

    Every answer to ``/v1/query`` and every refusal of a known member is recorded on
    ``ledger`` (None: the city runs without one) before it is sent. The parts are built and
    closed by their owner (``zhongshu.node.Node``), not here.
    """
    app = FastAPI(title="Zhongshu hub protocol", version=f"1 ({zhongshu.__version__})",
                  description="The hub protocol of Zhongshu (中枢). See PROTOCOL.md.",
                  openapi_url="/v1/openapi.json", docs_url="/v1/docs", redoc_url=None)
    app.state.ledger = ledger
    authn = Authenticator(service.catalog)
    browser = Sessions(sessions)
    metrics = Metrics()
    app.state.service = service
    app.state.metrics = metrics
    errors: dict[int | str, dict[str, Any]] = {
        s: {"model": ErrorOut} for s in (400, 401, 403, 404, 413, 429, 503, 504)}

    verifier = Verifier(service.catalog.store.key, nonces)

    async def caller(request: Request,
                     authorization: Annotated[str | None, Header()] = None) -> Caller:
        # async: a token lookup is a dict hit (or one indexed SQLite read), not worth a thread
        headers = request.headers
        if "signature-input" in headers:
            body = await request.body()
            msg = Message(request.method, request.url.path, request.url.query,
                          headers.get("host", ""), dict(headers.items()))
            name, signed = verifier.verify(msg, body)
            who = authn.member(name)
            if authorization and authn.authenticate(authorization).name != name:
                raise Unauthenticated("the bearer token and the signature name different "
                                      "members")
            signed_caller = Caller(who.member, signature=signed.signature, key_id=signed.key_id)
            request.state.caller = signed_caller
            return signed_caller
        cookie = request.cookies.get(COOKIE)
        if not authorization and cookie:
            who = _session_caller(request, cookie)
            request.state.caller = who
            return who
        who = authn.authenticate(authorization)
        if who.member.kind == "hub":
            raise Unauthenticated("members of kind `hub` must sign their requests "
                                  "(HTTP Message Signatures, RFC 9421, Ed25519)")
        request.state.caller = who
        return who

    def _session_caller(request: Request, cookie: str) -> Caller:
        hit = browser.member(cookie)
        if hit is None:
            raise Unauthenticated("the session has ended or expired; sign in again")
        origin = request.headers.get("origin")
        if request.method not in ("GET", "HEAD") and origin and \
                urlsplit(origin).netloc != request.headers.get("host"):
            raise Unauthenticated("a session cookie is accepted only from the hub's own pages")
        return authn.member(hit[0])

    @app.post("/v1/session", response_model=SessionOut, responses=errors, tags=["identity"])
    def sign_in(body: SessionIn, response: Response, request: Request) -> dict[str, Any]:
        """Exchange a member token for an HttpOnly, SameSite=Strict session cookie (for
        browsers: the token is sent once, in the body, and never kept by the page)."""
        who = authn.authenticate(f"Bearer {body.token}")
        if who.member.kind == "hub":
            raise Unauthenticated("members of kind `hub` sign their requests; they have no "
                                  "browser sessions")
        sid, expires = browser.open(who.name)
        response.set_cookie(COOKIE, sid, max_age=SESSION_S, path="/", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        log.info("session opened for %s", who.name)
        return {"member": who.name, "kind": who.member.kind,
                "title": who.member.title, "expires": expires}

    @app.get("/v1/session", response_model=SessionOut, responses=errors, tags=["identity"])
    def session(request: Request, who: Annotated[Caller, Depends(caller)]) -> dict[str, Any]:
        """Who the caller is (for a page: whose session this is, until when)."""
        hit = browser.member(request.cookies.get(COOKIE, ""))
        return {"member": who.name, "kind": who.member.kind,
                "title": who.member.title,
                "expires": hit[1] if hit else None}

    @app.delete("/v1/session", status_code=204, tags=["identity"])
    def sign_out(request: Request, response: Response) -> None:
        """End the browser session (sign out)."""
        if cookie := request.cookies.get(COOKIE):
            browser.close(cookie)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")

    @app.exception_handler(ZhongshuError)
    async def _zhongshu_error(request: Request, exc: ZhongshuError) -> Response:
        if exc.status >= 500 and exc.code == "internal":
            log.error("internal error on %s: %s", request.url.path, exc)
        elif exc.status == 401:  # anonymous: counted in metrics, not logged one by one
            log.debug("unauthenticated %s %s", request.method, request.url.path)
        elif exc.status in (403, 404, 429):
            # every refusal of a known member is logged (messages never hold data or secrets)
            refusals.warning("refused %s %s: %s: %s", request.method, request.url.path,
                             exc.code, exc.message)
        return _error(exc, await _record_refusal(request, exc.code))

    async def _record_refusal(request: Request, code: str) -> dict[str, Any] | None:
        who: Caller | None = getattr(request.state, "caller", None)
        if ledger is None or who is None:
            return None  # anonymous requests are counted, never recorded
        q: QueryIn | None = getattr(request.state, "query", None)
        fields = entry.refusal(
            who.name, f"{request.method} {request.url.path}", code,
            purpose=q.purpose if q else None,
            query=entry.query_sha256(q.sql, q.purpose, q.format, q.limit) if q else None,
            signature=who.signature, key_id=who.key_id)
        try:
            return (await ledger.record_async(fields)).to_dict()
        except LedgerUnavailable:
            return None  # the answer already says the hub cannot record; nothing more to do

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        return _error(BadRequest(f"{field or 'request'}: {err.get('msg')}"),
                      await _record_refusal(request, BadRequest.code))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return _error(NotFound(f"no such endpoint: {request.method} {request.url.path}"))
        code = "method_not_allowed" if exc.status_code == 405 else "bad_request"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of every route on this path (RFC 9110)
            methods = sorted({m for r in app.routes if hasattr(r, "path_regex")
                              and r.path_regex.match(request.url.path)
                              for m in getattr(r, "methods", None) or ()})
            headers["Allow"] = ", ".join(methods)
        return JSONResponse({"error": {"code": code, "message": str(exc.detail)}},
                            status_code=exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        try:
            receipt = await _record_refusal(request, "internal")
        except Exception:
            receipt = None
        return _error(ZhongshuError("internal error; the hub's log has the details"), receipt)

    app.add_middleware(_CountRequests, metrics=metrics)

    @app.get("/v1/city", responses=errors, tags=["hub"])
    def city(who: Annotated[Caller, Depends(caller)]) -> dict[str, Any]:
        """The city this hub serves: its name and districts (short name, administrative code,
        Chinese name), so clients can map a department's own codes onto them."""
        info = service.city.info
        return {"name": info.name, "title": info.title, "name_zh": info.name_zh,
                "code": info.code, "districts": [
                    {"name": d.name, "code": d.code, "name_zh": d.name_zh, "title": d.title}
                    for d in service.city.districts]}

    @app.get("/v1/health", response_model=HealthOut, responses=errors, tags=["hub"])
    def health(who: Annotated[Caller, Depends(caller)]) -> dict[str, Any]:
        """The hub's sources: ``ok`` or ``down: REASON``."""
        return {"status": "ok", "sources": service.health()}

    @app.get("/v1/catalog", response_model=list[DatasetOut], responses=errors, tags=["catalog"])
    def catalog(who: Annotated[Caller, Depends(caller)]) -> list[dict[str, Any]]:
        """Every listed dataset, and every unlisted one the caller may use."""
        return [_dataset_out(d, who, service.grants)
                for d in sorted(service.catalog.datasets.values(), key=lambda d: d.name)
                if service.grants.visible(who, d)]

    @app.get("/v1/datasets/{name}", response_model=DatasetDetailOut, responses=errors,
             tags=["catalog"])
    def dataset(name: str, who: Annotated[Caller, Depends(caller)]) -> dict[str, Any]:
        """One dataset, with what the caller may read of it."""
        ds = service.catalog.dataset(name)
        if ds is None or not service.grants.visible(who, ds):
            raise DatasetNotFound(f"no dataset `{name}`; `GET /v1/catalog` lists the datasets "
                                  "you can use")
        out = _dataset_out(ds, who, service.grants)
        if ds.owner == who.name:
            out["grants"] = [{"id": "owner", "columns": [c.name for c in ds.columns],
                              "purposes": ["*"], "masking": {}, "row_scope": None}]
        else:
            out["grants"] = [{"id": g.id, "columns": list(g.columns),
                              "purposes": list(g.purposes),
                              "masking": {c: m.kind for c, m in g.masking.items()},
                              "row_scope": g.row_scope,
                              "expires": g.expires.isoformat() if g.expires else None,
                              "rate_limit": g.rate_limit}
                             for g in service.grants.of(who.name, ds.name)]
        return out

    @app.post("/v1/query", response_model=QueryOut, responses={
        **errors, 200: {"content": {ARROW_STREAM: {}}, "description":
                        "JSON answer, or an Arrow IPC stream when `format` is `arrow` (the "
                        "receipt then travels in the `Zhongshu-Receipt` header)"}},
              tags=["query"])
    async def query(request: Request, body: QueryIn,
                    who: Annotated[Caller, Depends(caller)]) -> Response:
        """Answer one governed SELECT over datasets; the answer is sent once its ledger
        entry is durable, and carries the receipt."""
        t0 = time.perf_counter()
        request.state.query = body
        try:
            found = service.lookup(who, body.sql, body.purpose, body.limit)
            result = _inline(found)
            if result is None:
                result = await run_in_threadpool(service.run_found, found, who, body.purpose,
                                                  body.limit)
            payload = _payload(result, body)
        except ZhongshuError as e:
            metrics.query(e.code, "-", time.perf_counter() - t0)
            raise
        receipt = None
        if ledger is not None:
            fields = entry.exchange(
                who.name, body.purpose, entry.query_sha256(body.sql, body.purpose, body.format,
                                                           body.limit),
                result.plan.columns_read, [g.id for g in result.plan.grants],
                entry.result_sha256(payload), body.format, result.num_rows, result.truncated,
                signature=who.signature, key_id=who.key_id)
            receipt = (await ledger.record_async(fields, list(result.plan.columns_read))
                       ).to_dict()
        metrics.query("ok", result.path, time.perf_counter() - t0)
        if body.format == "arrow":
            headers = {"Zhongshu-Truncated": "true" if result.truncated else "false",
                       "Zhongshu-Row-Count": str(result.num_rows)}
            if receipt is not None:
                headers["Zhongshu-Receipt"] = orjson.dumps(receipt).decode()
            return Response(payload, media_type=ARROW_STREAM, headers=headers)
        head = orjson.dumps({"columns": encode.columns(result.schema),
                             "row_count": result.num_rows, "truncated": result.truncated,
                             "row_scope": result.plan.row_scope, "receipt": receipt})
        return Response(head[:-1] + b',"rows":' + payload + b"}", media_type="application/json")

    def _inline(found: Lookup) -> Result | None:
        """Answer on the event loop a query whose cached plan was measured sub-millisecond on
        the source's own engine (handing a 50 µs SQLite lookup to a thread costs more than
        the lookup, and under load threads convoy on the GIL); None: run it on a thread."""
        if found.plan is None or not found.plan.is_quick():
            return None
        try:
            return service.execute(found.plan, found.template, wait=False)
        except SourceBusy:
            return None

    def _payload(result: Result, body: QueryIn) -> bytes:
        """The exact result bytes: an Arrow IPC stream, or the canonical JSON rows."""
        if body.format == "arrow":
            payload = encode.arrow_ipc(result.table)
        else:
            payload = encode.rows_json(result.rows(), result.schema)
        _check_size(payload, service)
        return payload

    @app.post("/v1/query/explain", responses=errors, tags=["query"])
    def explain(body: QueryIn, who: Annotated[Caller, Depends(caller)]) -> dict[str, Any]:
        """What a query would read and how it is governed — nothing is run.

        The answer shows the rewritten SQL (each dataset replaced by its governed view), the
        path (pushed down to one source, or DuckDB), and for each dataset the columns read
        with the grant that allows each, its mask, and the row scope.
        """
        return service.explain(who, body.sql, body.purpose, body.limit)

    def _grant_out(g: Any) -> dict[str, Any]:
        return {"id": g.id, "owner": g.owner, "consumer": g.consumer, "dataset": g.dataset,
                "columns": list(g.columns), "purposes": list(g.purposes),
                "masking": {c: m.kind for c, m in g.masking.items()},
                "row_scope": g.row_scope,
                "expires": g.expires.isoformat() if g.expires else None,
                "rate_limit": g.rate_limit, "expired": g.expired(),
                "managed_by": "api" if g.id.split(":")[0] in service.grants.stored
                else "member file"}

    @app.get("/v1/grants", responses=errors, tags=["grants"])
    def grants(who: Annotated[Caller, Depends(caller)]) -> dict[str, Any]:
        """The grants the caller has made on its datasets, and those made to it."""
        service.refresh_grants()
        given = [_grant_out(g) for g in service.grants.given(who.name)]
        received = [_grant_out(g) for d in service.catalog.datasets.values()
                    for g in service.grants.of(who.name, d.name)]
        return {"given": given, "received": received}

    @app.post("/v1/grants", status_code=201, responses=errors, tags=["grants"])
    def add_grant(body: GrantIn, who: Annotated[Caller, Depends(caller)]) -> dict[str, str]:
        """Grant some of the caller's own datasets to another member (recorded with who)."""
        gid = service.grants.add(who.name, body.model_dump(exclude_none=True),
                                 actor=f"member:{who.name}")
        service.refresh_grants(force=True)
        return {"id": gid}

    @app.delete("/v1/grants/{grant_id}", responses=errors, tags=["grants"])
    def revoke_grant(grant_id: str, who: Annotated[Caller, Depends(caller)]) -> dict[str, str]:
        """Revoke a grant the caller made through the API or CLI (recorded with who)."""
        service.grants.revoke(who.name, grant_id, actor=f"member:{who.name}")
        service.refresh_grants(force=True)
        return {"revoked": grant_id}

    if ledger is not None:
        add_ledger_routes(app, ledger, service, caller, errors)
    add_subscribe_route(app, service, ledger, caller, errors)

    @app.get("/metrics", response_class=PlainTextResponse, tags=["hub"])
    def prometheus() -> str:
        """Prometheus metrics (counts only; no data, no identities)."""
        return metrics.render(service.sources.statuses())

    return app


class _CountRequests:
    """Pure ASGI middleware counting answers by route and status (no per-request task, unlike
    Starlette's BaseHTTPMiddleware, which costs a large share of a point lookup)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def counting_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            route = scope.get("route")
            self.metrics.request(getattr(route, "path", "unmatched"), status)


def _check_size(payload: bytes, service: QueryService) -> None:
    limit = service.settings.max_result_bytes
    if len(payload) > limit:
        raise ResultTooLarge(f"the answer is {len(payload):,} bytes, over the hub's limit of "
                             f"{limit:,}; select fewer columns, aggregate, or pass a smaller "
                             "`limit`")


def _error(exc: ZhongshuError, receipt: dict[str, Any] | None = None) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    body: dict[str, Any] = {"error": exc.to_dict()}
    if receipt is not None:
        body["receipt"] = receipt
    return Response(orjson.dumps(body), status_code=exc.status,
                    media_type="application/json", headers=headers)
