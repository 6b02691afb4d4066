"""The NGSI-LD endpoints (GS CIM 009, read-only) at ``/ngsi-ld/v1/``.

Every request is authenticated like the protocol's other routes (``protocol.auth``) and
answered as its caller: the datasets offered as the asked types are those the caller may
read for the request's purpose (``Zhongshu-Purpose``; without it, the caller's only granted
purpose for them), the query is one governed SELECT (``protocol.ngsild.sql``) run through
the same exchange as ``POST /v1/query`` (firewall, masks, row scopes, limits, rate limits,
one ledger entry), and the answer carries its receipt in ``Zhongshu-Receipt``. A row scope
that applied is said in ``Zhongshu-Row-Scope``; listed datasets of the asked types that the
caller holds no grant on for the purpose are named in ``Zhongshu-Not-Granted``.

``/types`` and ``/attributes`` are answered from the owners' mappings and the caller's
grants, like ``GET /v1/catalog`` (not recorded); ``/types/{type}`` counts entities with a
governed query (recorded). Writes answer ``405``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import orjson
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from zhongshu.errors import (
    BadRequest,
    DatasetNotFound,
    Forbidden,
    NotFound,
    PurposeNotGranted,
    ZhongshuError,
)
from zhongshu.policy.identity import Caller
from zhongshu.protocol import exchange
from zhongshu.protocol.ngsild import geo, media, params, qlang, render
from zhongshu.protocol.ngsild.offers import (
    Offer,
    attribute_names,
    offers,
    readable,
    type_names,
)
from zhongshu.protocol.ngsild.problems import InvalidRequest, MethodNotAllowed, problem
from zhongshu.protocol.ngsild.qlang import QueryError
from zhongshu.protocol.ngsild.sql import Filters, Part, count_only, page
from zhongshu.protocol.routes import Parts

log = logging.getLogger("zhongshu.protocol")
ROOT = "/ngsi-ld/v1"
PURPOSE = "Zhongshu-Purpose"
MAX_BODY = 64 * 1024
Work = Callable[[Request, Caller], Awaitable[Response]]


class Face:
    """The NGSI-LD face over one protocol application's parts."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.service = parts.service

    # -- who, and which datasets -------------------------------------------------------

    def offers(self) -> list[Offer]:
        return offers(self.service.catalog)

    def choose(self, request: Request, who: Caller, candidates: list[Offer]
               ) -> tuple[list[Part], str, list[str]]:
        """The parts ``who`` may read of ``candidates`` for the request's purpose, the
        purpose, and the listed datasets left out for want of a grant.

        Raises:
            BadRequest: no purpose named and several (or, for an owner, none) apply.
            Forbidden, PurposeNotGranted: none of the candidates may be read.
        """
        grants = self.service.grants
        visible = [o for o in candidates if grants.visible(who, o.dataset)]
        purpose = request.headers.get(PURPOSE)
        if purpose is None:
            held = sorted({p for o in visible if o.dataset.owner != who.name
                           for g in grants.of(who.name, o.name) for p in g.purposes})
            if len(held) > 1:
                raise BadRequest(f"these datasets are granted to `{who.name}` for several "
                                 f"purposes ({', '.join(held)}): name one in the "
                                 f"{PURPOSE} header")
            if not held and visible and all(o.dataset.owner == who.name for o in visible):
                raise BadRequest(f"name the purpose of reading your own data in the {PURPOSE} "
                                 "header")
            purpose = held[0] if held else ""
        chosen: list[Part] = []
        refused: list[ZhongshuError] = []
        left_out: list[str] = []
        for o in visible:
            try:
                access = grants.decide(who, o.dataset, purpose)
            except (Forbidden, PurposeNotGranted, DatasetNotFound) as e:
                refused.append(e)
                if o.dataset.listed:
                    left_out.append(o.name)
                continue
            if any(m.kind == "aggregate_only" for m in access.masking.values()):
                left_out.append(o.name)
                continue  # entities are rows: an aggregate-only grant gives none
            cols = set(access.columns)
            m = o.mapping
            if not set(m.keys()) <= cols:
                left_out.append(o.name)
                continue  # without its key columns an entity has no id
            attrs = tuple(a for a in m.attributes if m.attribute(a).column in cols)
            located = m.location is not None and {m.location.lon, m.location.lat} <= cols
            observed = m.observed_at is not None and m.observed_at in cols
            chosen.append(Part(o, attrs, located, observed))
        if not chosen and refused:
            raise refused[0]
        return chosen, purpose, left_out

    async def run(self, request: Request, who: Caller, sql: str, purpose: str
                  ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """Run one governed query; its rows by column name, and the answer's headers
        (receipt, row scope, truncation)."""
        t0 = time.perf_counter()
        request.state.asked = exchange.Asked(sql, purpose)
        try:
            done = await exchange.answer(self.service, self.parts.ledger, who, sql, purpose,
                                         None, "json", self.service.deadline())
        except ZhongshuError as e:
            self.parts.metrics.query(e.code, "-", time.perf_counter() - t0)
            raise
        self.parts.metrics.query("ok", done.result.path, time.perf_counter() - t0)
        names = done.result.schema.names
        rows = [dict(zip(names, r, strict=True)) for r in orjson.loads(done.payload)]
        headers = {"Zhongshu-Purpose": purpose}
        if done.receipt is not None:
            headers["Zhongshu-Receipt"] = orjson.dumps(done.receipt).decode()
        if done.result.plan.row_scope:
            headers["Zhongshu-Row-Scope"] = orjson.dumps(done.result.plan.row_scope).decode()
        if done.result.truncated:
            headers["Zhongshu-Truncated"] = "true"
        return rows, headers

    # -- the answer --------------------------------------------------------------------

    def answer(self, request: Request, body: Any, mtype: str, headers: dict[str, str],
               status: int = 200) -> Response:
        base = str(request.base_url).rstrip("/")
        if mtype == media.LD:
            ctx = f"{base}{media.CONTEXTS_PATH}{media.CITY}"
            if isinstance(body, list):
                body = [{**b, "@context": ctx} for b in body]
            elif isinstance(body, dict):
                body = {**body, "@context": ctx}
        else:
            link = media.link(base)
            headers = {**headers, "Link": f"{headers['Link']}, {link}" if "Link" in headers
                       else link}
        return Response(orjson.dumps(body), status_code=status, media_type=mtype,
                        headers=headers)

    async def entities(self, request: Request, who: Caller, p: dict[str, str],
                       selector: dict[str, Any], pg: params.Page, endpoint_one: bool = False
                       ) -> Response:
        """Entities matching ``selector`` (types, ids, idPattern, q, geo, attrs)."""
        mtype = media.negotiate(request.headers.get("accept"))
        all_offers = self.offers()
        names = attribute_names(all_offers)
        attrs = selector.get("attrs")
        shape = params.shape(p, attrs, names)
        types: set[str] | None = selector.get("types")
        candidates = [o for o in all_offers if types is None or o.mapping.type in types]
        if selector.get("ids") is not None:
            ids = selector["ids"]
            candidates = [o for o in candidates if any(i.startswith(o.prefix()) for i in ids)]
        chosen: list[Part] = []
        purpose, left_out = "", list[str]()
        if candidates:
            chosen, purpose, left_out = self.choose(request, who, candidates)
        filters = Filters(ids=selector.get("ids"), id_pattern=selector.get("idPattern"),
                          q=selector.get("q"), geo=selector.get("geo"),
                          attrs=tuple(names.get(a, a) for a in attrs) if attrs else None)
        headers: dict[str, str] = {}
        if left_out:
            headers["Zhongshu-Not-Granted"] = ", ".join(left_out)
        entities: list[dict[str, Any]] = []
        total: int | None = 0 if pg.count else None
        if chosen:
            if pg.limit == 0:
                if pg.count:
                    rows, h = await self.run(request, who, count_only(chosen, filters, names),
                                             purpose)
                    headers |= h
                    total = int(rows[0]["n"])
            else:
                sql, every = page(chosen, filters, names, pg.limit, pg.offset, pg.count)
                rows, h = await self.run(request, who, sql, purpose)
                headers |= h
                entities = [render.entity(r, chosen, every, shape) for r in rows]
                if pg.count:
                    if rows:
                        total = int(rows[0]["_total"])
                    elif pg.offset:  # past the end: the page cannot say how many there are
                        rows, h = await self.run(
                            request, who, count_only(chosen, filters, names), purpose)
                        headers |= h
                        total = int(rows[0]["n"])
        if total is not None:
            headers["NGSILD-Results-Count"] = str(total)
        if request.method in ("GET", "HEAD") and not endpoint_one and pg.limit:
            pages = _pages(request, pg, len(entities), total)
            if pages:
                headers["Link"] = pages
        if endpoint_one:
            if not entities:
                raise NotFound(f"no entity `{selector['ids'][0]}` that you may read")
            one = entities[0]
            if mtype == media.GEO:
                return self.answer(request, render.feature(one, shape.form), mtype, headers)
            return self.answer(request, one, mtype, headers)
        if mtype == media.GEO:
            return self.answer(request, {"type": "FeatureCollection", "features": [
                render.feature(e, shape.form) for e in entities]}, mtype, headers)
        return self.answer(request, entities, mtype, headers)


def _pages(request: Request, pg: params.Page, got: int, total: int | None) -> str:
    """The ``Link`` header's ``rel="next"`` and ``rel="prev"`` of a page of entities
    (GS CIM 009, pagination): the same request with ``offset`` moved by ``limit``; next while
    the page was full (and, with a count, while entities remain), prev past the first."""
    links = []
    more = got == pg.limit and (total is None or pg.offset + pg.limit < total)
    if more:
        nxt = request.url.include_query_params(offset=pg.offset + pg.limit, limit=pg.limit)
        links.append(f'<{nxt}>; rel="next"')
    if pg.offset > 0:
        prv = request.url.include_query_params(offset=max(0, pg.offset - pg.limit),
                                               limit=pg.limit)
        links.append(f'<{prv}>; rel="prev"')
    return ", ".join(links)


def _selector(p: dict[str, str], all_offers: list[Offer]) -> dict[str, Any]:
    """The entity selector of ``GET /entities``'s parameters."""
    out: dict[str, Any] = {}
    if "type" in p:
        if any(c in p["type"] for c in ";()"):
            raise QueryError("type: only a list of types (`A,B` or `A|B`) is supported")
        resolve = type_names(all_offers)
        out["types"] = {resolve.get(t.strip(), "\0") for t in
                        p["type"].replace("|", ",").split(",")}
    if "id" in p:
        out["ids"] = params.entity_ids(p["id"])
    if "idPattern" in p:
        out["idPattern"] = p["idPattern"]
    if "q" in p:
        out["q"] = qlang.parse(p["q"])
    if "attrs" in p:
        out["attrs"] = params.attribute_names(p["attrs"])
    g = geo.parse(p.get("georel"), p.get("geometry"), p.get("coordinates"),
                  p.get("geoproperty"))
    if g is not None:
        out["geo"] = g
    return out


def add_routes(app: FastAPI, parts: Parts) -> None:
    """Mount the NGSI-LD face at ``/ngsi-ld/v1/``."""
    face = Face(parts)
    service, ledger, caller = parts.service, parts.ledger, parts.caller

    def guarded(work: Work) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                who = await caller.resolve(request, request.headers.get("authorization"))
                return await work(request, who)
            except ZhongshuError as exc:
                if exc.status == 500:
                    log.error("internal error on %s: %s", request.url.path, exc)
                asked = getattr(request.state, "asked", None)
                receipt = await exchange.record_refusal(
                    service, ledger, getattr(request.state, "caller", None),
                    f"{request.method} {request.url.path}", exc.code, asked, exc.datasets)
                return problem(exc, receipt)
            except Exception:
                log.exception("unexpected error on %s", request.url.path)
                return problem(ZhongshuError("internal error; the hub's log has the details"))
        return endpoint

    async def get_entities(request: Request, who: Caller) -> Response:
        p = params.read(request.query_params, params.ENTITIES)
        selector = _selector(p, face.offers())
        if not ({"types", "ids", "idPattern", "q", "attrs", "geo"} & set(selector)):
            raise QueryError("name what to find: type, id, idPattern, attrs, q or a geo-query")
        return await face.entities(request, who, p, selector, params.page(p))

    async def get_entity(request: Request, who: Caller) -> Response:
        p = params.read(request.query_params, params.ENTITY)
        entity_id = unquote(request.path_params["entity_id"])
        if ":" not in entity_id or any(c.isspace() for c in entity_id):
            raise QueryError(f"`{entity_id[:200]}` is not a URI: entity ids are URNs")
        selector: dict[str, Any] = {"ids": (entity_id,)}
        if "type" in p:
            selector["types"] = {type_names(face.offers()).get(p["type"], "\0")}
        if "attrs" in p:
            selector["attrs"] = params.attribute_names(p["attrs"])
        return await face.entities(request, who, p, selector, params.Page(1, 0, False),
                                   endpoint_one=True)

    async def post_query(request: Request, who: Caller) -> Response:
        p = params.read(request.query_params, params.PAGED)
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise InvalidRequest(f"the body is over {MAX_BODY} bytes")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise InvalidRequest("the body is not JSON") from None
        if not isinstance(body, dict) or body.get("type") != "Query":
            raise InvalidRequest('the body is a Query: {"type": "Query", "entities": '
                                 '[{"type": "…"}], "q": "…", "attrs": […], "geoQ": {…}}')
        extra = set(body) - {"type", "entities", "attrs", "q", "geoQ", "@context", "pick",
                             "omit"}
        if extra:
            raise InvalidRequest(f"unknown or unsupported member(s) of the Query: "
                                 f"{', '.join(sorted(extra))}")
        all_offers = face.offers()
        selector: dict[str, Any] = {}
        ents = body.get("entities")
        if ents is not None:
            if not isinstance(ents, list) or not all(isinstance(e, dict) for e in ents):
                raise InvalidRequest("entities is a list of {\"type\", \"id\"?, "
                                     "\"idPattern\"?}")
            resolve = type_names(all_offers)
            selector["types"] = {resolve.get(str(e.get("type")), "\0") for e in ents}
            ids = [e["id"] for e in ents if "id" in e]
            if any(not isinstance(i, str) for i in ids):
                raise InvalidRequest("an entity's id is a string")
            if ids:
                if len(ids) != len(ents):
                    raise QueryError("give an id for every entity selector, or none")
                selector["ids"] = tuple(ids)
            patterns = [e["idPattern"] for e in ents if "idPattern" in e]
            if patterns:
                if len(ents) != 1 or not isinstance(patterns[0], str):
                    raise QueryError("idPattern is supported with one entity selector")
                selector["idPattern"] = patterns[0]
        for key in ("q", "attrs", "pick", "omit"):
            v = body.get(key)
            if v is not None and not isinstance(v, (str, list)):
                raise InvalidRequest(f"{key} is a string or a list of strings")
        if body.get("q") is not None:
            selector["q"] = qlang.parse(str(body["q"]))
        for key in ("attrs", "pick", "omit"):
            v = body.get(key)
            if v is not None:
                listed = ",".join(v) if isinstance(v, list) else v
                if key == "attrs":
                    selector["attrs"] = params.attribute_names(listed)
                else:
                    p[key] = listed
        g = body.get("geoQ")
        if g is not None:
            if not isinstance(g, dict):
                raise InvalidRequest("geoQ is an object {geometry, coordinates, georel}")
            parsed = geo.parse(g.get("georel"), g.get("geometry"), g.get("coordinates"),
                               g.get("geoproperty"))
            if parsed is None:
                raise QueryError("geoQ needs georel, geometry and coordinates")
            selector["geo"] = parsed
        if not ({"types", "ids", "q", "attrs", "geo"} & set(selector)):
            raise QueryError("name what to find: entities, attrs, q or geoQ")
        return await face.entities(request, who, p, selector, params.page(p))

    def listed(who: Caller) -> list[Offer]:
        return [o for o in face.offers() if readable(service.grants, who, o)]

    def list_id(kind: str, items: list[str]) -> str:
        return f"urn:ngsi-ld:{kind}:" + hashlib.sha256(
            ",".join(items).encode()).hexdigest()[:16]

    async def get_types(request: Request, who: Caller) -> Response:
        p = params.read(request.query_params, params.LISTS)
        mtype = media.negotiate(request.headers.get("accept"), (media.JSON, media.LD))
        mine = listed(who)
        by: dict[str, set[str]] = {}
        uri: dict[str, str] = {}
        for o in mine:
            by.setdefault(o.mapping.type, set()).update(o.mapping.attributes)
            uri[o.mapping.type] = o.mapping.expand(o.mapping.type)
        if params.flag(p, "details"):
            body: Any = [{"id": uri[t], "type": "EntityType", "typeName": t,
                          "attributeNames": sorted(by[t])} for t in sorted(by)]
        else:
            body = {"id": list_id("EntityTypeList", sorted(by)), "type": "EntityTypeList",
                    "typeList": sorted(by)}
        return face.answer(request, body, mtype, {})

    async def get_type(request: Request, who: Caller) -> Response:
        params.read(request.query_params, frozenset({"local"}))
        mtype = media.negotiate(request.headers.get("accept"), (media.JSON, media.LD))
        all_offers = face.offers()
        name = type_names(all_offers).get(unquote(request.path_params["type_name"]))
        mine = [o for o in listed(who) if o.mapping.type == name]
        if not mine:
            raise NotFound(f"no entity type `{request.path_params['type_name'][:200]}` "
                           "that you may read")
        chosen, purpose, left_out = face.choose(request, who, mine)
        count, headers = 0, dict[str, str]()
        if chosen:
            rows, headers = await face.run(request, who, count_only(chosen, Filters(), {}),
                                           purpose)
            count = int(rows[0]["n"])
        if left_out:
            headers["Zhongshu-Not-Granted"] = ", ".join(left_out)
        attrs = sorted({a for c in chosen for a in c.attrs})
        m = mine[0].mapping
        body = {"id": m.expand(m.type), "type": "EntityTypeInfo", "typeName": m.type,
                "entityCount": count, "attributeDetails": [
                    {"id": m.expand(a), "type": "Attribute", "attributeName": a,
                     "attributeTypes": ["Property"]} for a in attrs] + ([
                    {"id": "https://uri.etsi.org/ngsi-ld/location", "type": "Attribute",
                     "attributeName": "location", "attributeTypes": ["GeoProperty"]}]
                    if any(c.located for c in chosen) else [])}
        return face.answer(request, body, mtype, headers)

    def attribute_types(who: Caller) -> dict[str, tuple[str, set[str]]]:
        out: dict[str, tuple[str, set[str]]] = {}
        for o in listed(who):
            for a in o.mapping.attributes:
                out.setdefault(a, (o.mapping.expand(a), set()))[1].add(o.mapping.type)
        return out

    async def get_attributes(request: Request, who: Caller) -> Response:
        p = params.read(request.query_params, params.LISTS)
        mtype = media.negotiate(request.headers.get("accept"), (media.JSON, media.LD))
        every = attribute_types(who)
        if params.flag(p, "details"):
            body: Any = [{"id": uri, "type": "Attribute", "attributeName": a,
                          "typeNames": sorted(ts)} for a, (uri, ts) in sorted(every.items())]
        else:
            body = {"id": list_id("AttributeList", sorted(every)), "type": "AttributeList",
                    "attributeList": sorted(every)}
        return face.answer(request, body, mtype, {})

    async def get_attribute(request: Request, who: Caller) -> Response:
        params.read(request.query_params, frozenset({"local"}))
        mtype = media.negotiate(request.headers.get("accept"), (media.JSON, media.LD))
        every = attribute_types(who)
        name = attribute_names(face.offers()).get(unquote(request.path_params["attr"]))
        if name not in every:
            raise NotFound(f"no attribute `{request.path_params['attr'][:200]}` that you "
                           "may read")
        uri, ts = every[name]
        return face.answer(request, {"id": uri, "type": "Attribute", "attributeName": name,
                                     "typeNames": sorted(ts)}, mtype, {})

    async def elsewhere(request: Request, who: Caller) -> Response:
        path = request.url.path[len(ROOT):]
        if path == "/entityOperations/query":
            raise MethodNotAllowed("entityOperations/query answers POST", "POST")
        known = ("/entities", "/types", "/attributes", "/entityOperations/",
                 "/subscriptions", "/csourceRegistrations", "/csourceSubscriptions",
                 "/temporal/", "/jsonldContexts")
        if request.method not in ("GET", "HEAD") and path.startswith(known):
            raise MethodNotAllowed("this hub's NGSI-LD face is read-only: the data's owners "
                                   "change their data in their own systems", "GET")
        raise NotFound(f"no NGSI-LD resource {request.method} {request.url.path[:200]}; this "
                       "hub serves /entities, /types, /attributes and "
                       "/entityOperations/query (docs/ngsi-ld.md)")

    async def context(request: Request) -> Response:
        name = request.path_params["name"]
        base = str(request.base_url).rstrip("/")
        if name == media.CORE:
            doc = media.core_context()
        elif name == media.CITY:
            # public: the terms of listed datasets only (an unlisted one's names stay unseen)
            doc = media.city_context([o for o in face.offers() if o.dataset.listed], base)
        else:
            return problem(NotFound(f"no context `{name[:100]}` here"))
        return Response(orjson.dumps(doc), media_type=media.LD,
                        headers={"Cache-Control": "max-age=300"})

    get = ["GET", "HEAD"]
    app.add_route(f"{ROOT}/jsonldContexts/{{name}}", context, methods=get,
                  include_in_schema=False)
    # the collections also with a trailing slash, as the ETSI test suite asks for them
    # (`/entities/?type=…`): the same answer, not a redirect a client must follow
    for collection, handler in (("entities", get_entities), ("types", get_types),
                                ("attributes", get_attributes)):
        app.add_route(f"{ROOT}/{collection}/", guarded(handler), methods=get,
                      include_in_schema=False)
    app.add_route(f"{ROOT}/entities", guarded(get_entities), methods=get,
                  include_in_schema=False)
    app.add_route(f"{ROOT}/entities/{{entity_id}}", guarded(get_entity), methods=get,
                  include_in_schema=False)
    app.add_route(f"{ROOT}/entityOperations/query", guarded(post_query), methods=["POST"],
                  include_in_schema=False)
    app.add_route(f"{ROOT}/types", guarded(get_types), methods=get, include_in_schema=False)
    app.add_route(f"{ROOT}/types/{{type_name:path}}", guarded(get_type), methods=get,
                  include_in_schema=False)
    app.add_route(f"{ROOT}/attributes", guarded(get_attributes), methods=get,
                  include_in_schema=False)
    app.add_route(f"{ROOT}/attributes/{{attr:path}}", guarded(get_attribute), methods=get,
                  include_in_schema=False)
    app.add_route(f"{ROOT}/{{rest:path}}", guarded(elsewhere),
                  methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                  include_in_schema=False)
    app.add_route(ROOT, guarded(elsewhere), methods=["GET", "HEAD", "POST", "PUT", "PATCH",
                                                    "DELETE"], include_in_schema=False)
