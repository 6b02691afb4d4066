"""Without credentials, every route of the hub — the protocol, the cockpit's data and the
scenarios, the app built as `zhongshu serve` builds it — answers `401 unauthenticated`,
except the documented public ones (docs/security.md, "Who may call without credentials").
The requests are generated from the app's own OpenAPI document (path parameters filled,
required query parameters and bodies given), so a new route is walked the day it is added;
routes the document leaves out must be public ones too, or routes of the NGSI-LD face
(``/ngsi-ld/v1/``, described by ETSI GS CIM 009, not by this document), which are walked
here and must answer ``401`` as ProblemDetails. The list below is the only hand list.
The document says the same: a public operation has ``security: []``, every other one names
the schemes that admit it.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from tests.conftest import RunningHub

# (method, path template) answered without credentials, each for a reason documented in
# docs/security.md: probes, metrics, the protocol's description, signing in and out, the
# cockpit's page data (no data of any member), the ledger's public proofs, and the demo
# identity provider's public keys
PUBLIC = {
    ("GET", "/livez"), ("GET", "/readyz"), ("GET", "/metrics"),
    ("GET", "/v1/openapi.json"), ("GET", "/v1/docs"), ("MOUNT", "/v1/docs/static"),
    ("POST", "/v1/session"), ("DELETE", "/v1/session"),
    ("GET", "/cockpit"), ("GET", "/cockpit/"), ("GET", "/cockpit/district/{area}"),
    ("GET", "/cockpit/street/{area}"), ("GET", "/cockpit/city.json"),
    ("GET", "/cockpit/panels.json"), ("GET", "/cockpit/geo/{level}.geojson"),
    ("MOUNT", "/cockpit/static"),
    ("GET", "/v1/ledger/checkpoint"), ("GET", "/v1/ledger/checkpoints"),
    ("GET", "/v1/ledger/key"), ("GET", "/v1/ledger/proof/inclusion"),
    ("GET", "/v1/ledger/proof/consistency"), ("GET", "/v1/ledger/tile/{level}/{rest}"),
    ("POST", "/v1/ledger/witness/add-checkpoint"), ("GET", "/v1/ledger/witness/evidence"),
    ("GET", "/demo/idp/jwks.json"),  # the demo identity provider's public keys
    ("GET", "/ngsi-ld/v1/jsonldContexts/{name}"),  # JSON-LD contexts: standards' terms
}
NGSI_LD = "/ngsi-ld/v1"


def _value(schema: dict[str, Any], doc: dict[str, Any]) -> str:
    """A value of the parameter's type (the route must not get as far as checking it)."""
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return _value(schema[key][0], doc)
    if "enum" in schema:
        return str(schema["enum"][0])
    kind, fmt = schema.get("type"), schema.get("format")
    if kind in ("integer", "number"):
        return str(schema.get("minimum", 1))
    if fmt == "date":
        return "2026-01-01"
    if fmt == "date-time":
        return "2026-01-01T00:00:00Z"
    return "x" * max(1, int(schema.get("minLength", 1)))


def _request(c: httpx.Client, method: str, path: str, op: dict[str, Any],
             doc: dict[str, Any]) -> httpx.Request:
    """The request for one operation: path parameters filled, required query parameters and
    a required body given."""
    query: dict[str, str] = {}
    for p in op.get("parameters", []):
        if p["in"] == "path":
            path = path.replace("{" + p["name"] + "}", _value(p.get("schema", {}), doc))
        elif p["in"] == "query" and p.get("required"):
            query[p["name"]] = _value(p.get("schema", {}), doc)
    body = op.get("requestBody")
    return c.build_request(method.upper(), path, params=query,
                           json={} if body and body.get("required") else None)


def test_every_route_but_the_public_ones_needs_credentials(own_hub_factory: Any) -> None:
    hub: RunningHub = own_hub_factory(scenarios=True)
    with httpx.Client(base_url=hub.url, timeout=30) as c:
        doc = c.get("/v1/openapi.json").json()
        walked = []
        for path, ops in doc["paths"].items():
            for method, op in ops.items():
                r = c.send(_request(c, method, path, op, doc))
                walked.append((method.upper(), path))
                if (method.upper(), path) in PUBLIC:
                    assert r.status_code != 401, (method, path)
                    assert op["security"] == [], (method, path)
                    continue
                assert op["security"] and all(op["security"]), (method, path)
                assert r.status_code == 401, (method, path, r.status_code, r.text[:200])
                assert r.json()["error"]["code"] == "unauthenticated"
                assert r.headers["www-authenticate"] == "Bearer"
    scenario_routes = [p for _, p in walked if p.startswith("/scenarios/")]
    assert {p.split("/")[2] for p in scenario_routes} >= {"parking", "medical", "trees"}
    assert any(p.startswith("/scenarios/parking/ngsi-ld/") for p in scenario_routes)


def test_routes_the_document_leaves_out_are_public_ones(own_hub_factory: Any) -> None:
    hub: RunningHub = own_hub_factory(scenarios=True)
    hidden = []
    ngsi_ld = []
    for route in hub.app.routes:
        if isinstance(route, Route) and route.path.startswith(NGSI_LD) and \
                ("GET", route.path) not in PUBLIC:
            ngsi_ld += [(m, route.path) for m in sorted(route.methods or ()) if m != "HEAD"]
        elif isinstance(route, Mount):
            hidden.append(("MOUNT", route.path))
        elif isinstance(route, APIRoute | Route) and not getattr(route, "include_in_schema",
                                                                 True):
            hidden += [(m, route.path) for m in sorted(route.methods or ()) if m != "HEAD"]
        elif hasattr(route, "original_router"):  # an included router (the scenarios)
            for inner in route.original_router.routes:
                assert isinstance(inner, APIRoute) and inner.include_in_schema, inner
    assert hidden and set(hidden) <= PUBLIC, set(hidden) - PUBLIC
    assert len(ngsi_ld) > 8
    with httpx.Client(base_url=hub.url, timeout=30) as c:
        for method, path in ngsi_ld:
            filled = path.replace("{entity_id}", "urn:x:1").replace(":path}", "}")
            for name in ("type_name", "attr", "rest"):
                filled = filled.replace("{" + name + "}", "x")
            r = c.request(method, filled)
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.json()["code"] == "unauthenticated" and r.json()["status"] == 401
