"""The query parameters of the NGSI-LD face, read strictly: a parameter no endpoint knows is
``400``, one the spec defines but this hub does not implement is ``400`` saying so, a
parameter given twice is ``400`` — none is silently ignored."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.datastructures import QueryParams

from zhongshu.protocol.ngsild.problems import InvalidRequest
from zhongshu.protocol.ngsild.qlang import QueryError
from zhongshu.protocol.ngsild.render import Shape

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
#: defined by GS CIM 009, not implemented here (a request using them is refused, not
#: answered as if they were absent)
UNSUPPORTED = frozenset({
    "csf", "lang", "scopeQ", "datasetId", "join", "joinLevel", "containedBy", "entityMap",
    "expandValues", "collect", "temporalQ", "timerel", "timeAt", "endTimeAt", "timeproperty",
    "lastN", "aggrMethods", "aggrPeriodDuration", "attrsAssociated", "geometryProperty!",
    "local!", "deleteAll", "ordering", "orderBy", "via", "jsonKeys", "splitEntity"})
PAGED = frozenset({"limit", "offset", "count", "options", "format", "local"})
SHAPED = frozenset({"attrs", "pick", "omit", "options", "format", "geometryProperty", "local"})
ENTITIES = PAGED | SHAPED | {"id", "idPattern", "type", "q", "georel", "geometry",
                             "coordinates", "geoproperty"}
ENTITY = SHAPED | {"type"}
LISTS = frozenset({"details", "local"})
FORMS = {"normalized": "normalized", "keyValues": "keyValues", "simplified": "keyValues",
         "concise": "concise"}


def read(query: QueryParams, allowed: frozenset[str]) -> dict[str, str]:
    """The request's parameters, each once, each one ``allowed``.

    Raises:
        InvalidRequest: a parameter unknown, not implemented, or given twice.
    """
    out: dict[str, str] = {}
    for key, value in query.multi_items():
        if key in out:
            raise InvalidRequest(f"parameter `{key}` is given twice; give it once (lists "
                                 "are comma-separated)")
        if key not in allowed:
            if key in UNSUPPORTED:
                raise InvalidRequest(f"parameter `{key}` is not supported by this hub "
                                     "(docs/ngsi-ld.md lists what is)")
            raise InvalidRequest(f"unknown parameter `{key}` for this endpoint; it takes "
                                 f"{', '.join(sorted(allowed))}")
        out[key] = value
    if out.get("local") not in (None, "true", "false"):
        raise QueryError("local is true or false")
    if out.get("geometryProperty") not in (None, "location"):
        raise QueryError("geometryProperty: the entities offered have one GeoProperty, "
                         "`location`")
    return out


def names(text: str | None) -> tuple[str, ...] | None:
    """A comma-separated list (None: not given)."""
    if text is None:
        return None
    items = tuple(t.strip() for t in text.split(","))
    if not all(items):
        raise QueryError("an empty name in a comma-separated list")
    return items


_ATTRIBUTE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"'{}|\\^`;(),=]+")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]+")


def attribute_names(text: str | None) -> tuple[str, ...] | None:
    """``attrs`` / ``pick`` / ``omit``: a comma-separated list of attribute names, short
    (letters, digits, ``_``) or full URIs; anything else (``a;b``, ``a{b``, ``a||b``) is a
    request that cannot be read (``400``), never a name matching nothing.

    >>> attribute_names("name,https://smartdatamodels.org/dataModel.Parking/totalSpotNumber")
    ('name', 'https://smartdatamodels.org/dataModel.Parking/totalSpotNumber')
    """
    items = names(text)
    for item in items or ():
        if not _ATTRIBUTE.fullmatch(item):
            raise QueryError(f"`{item[:80]}` is not an attribute name (letters, digits and "
                             "_, or a full URI)")
    return items


def entity_ids(text: str | None) -> tuple[str, ...] | None:
    """``id``: a comma-separated list of entity ids, each a URI (``400`` otherwise)."""
    items = names(text)
    for item in items or ():
        if not _URI.fullmatch(item):
            raise QueryError(f"`{item[:80]}` is not a URI: entity ids are URNs")
    return items


def number(p: Mapping[str, str], key: str, default: int, high: int) -> int:
    text = p.get(key)
    if text is None:
        return default
    if not text.isdigit() or int(text) > high:
        raise QueryError(f"{key} is a whole number from 0 to {high}")
    return int(text)


def flag(p: Mapping[str, str], key: str) -> bool:
    v = p.get(key, "false")
    if v not in ("true", "false"):
        raise QueryError(f"{key} is true or false")
    return v == "true"


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int
    count: bool


def page(p: Mapping[str, str]) -> Page:
    return Page(number(p, "limit", DEFAULT_LIMIT, MAX_LIMIT),
                number(p, "offset", 0, 10_000_000), flag(p, "count"))


def shape(p: Mapping[str, str], attrs: tuple[str, ...] | None,
          resolve: Mapping[str, str]) -> Shape:
    """The rendering a request asks for: ``options`` / ``format``, ``pick`` / ``omit`` /
    ``attrs`` (names resolved through ``resolve``, short or full)."""
    forms, sys_attrs = set(), False
    for o in names(p.get("options")) or ():
        if o == "sysAttrs":
            sys_attrs = True
        elif o in FORMS:
            forms.add(FORMS[o])
        else:
            raise InvalidRequest(f"option `{o}` is not one of normalized, keyValues, "
                                 "simplified, concise, sysAttrs")
    if "format" in p:  # the representation asked for by name takes precedence over options
        if p["format"] not in FORMS:
            raise InvalidRequest("format is normalized, keyValues, simplified or concise")
        forms = {FORMS[p["format"]]}
    if len(forms) > 1:
        raise QueryError("ask for one representation: normalized, keyValues or concise")
    pick, omit = attribute_names(p.get("pick")), attribute_names(p.get("omit"))
    if pick is not None and (omit is not None or attrs is not None):
        raise QueryError("pick goes alone: not with omit or attrs")
    if omit is not None and attrs is not None:
        raise QueryError("omit goes without attrs: name what to keep or what to leave out")
    keep: frozenset[str] | None = None
    every = frozenset(resolve.values()) | {"location"}
    if attrs is not None:
        keep = frozenset(resolve.get(a, a) for a in attrs) | {"location"}
    if pick is not None:
        keep = frozenset(resolve.get(a, a) for a in pick if a not in ("id", "type"))
    if omit is not None:
        keep = every - {resolve.get(a, a) for a in omit}
    return Shape(next(iter(forms), "normalized"), sys_attrs, keep)
