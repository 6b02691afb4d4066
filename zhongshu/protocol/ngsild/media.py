"""Content negotiation and JSON-LD contexts of the NGSI-LD face.

Answers are ``application/json`` (the context in a ``Link`` header), ``application/ld+json``
(the context as ``@context`` in the body) or, for entities, ``application/geo+json``; a
request that accepts none of them gets ``406``. The contexts are served by the hub itself
(``/ngsi-ld/v1/jsonldContexts/…``): the NGSI-LD core terms it uses (a minimal document shipped
in ``contexts/``, written for this hub, not a copy of ETSI's) and the city's, generated from
the owners' declared mappings — nothing is fetched at run time.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from zhongshu.protocol.ngsild.offers import Offer
from zhongshu.protocol.ngsild.problems import NotAcceptable

JSON, LD, GEO = "application/json", "application/ld+json", "application/geo+json"
CORE = "ngsi-ld-core-context.jsonld"
CITY = "city-context.jsonld"
CONTEXTS_PATH = "/ngsi-ld/v1/jsonldContexts/"


def negotiate(accept: str | None, offered: tuple[str, ...] = (JSON, LD, GEO)) -> str:
    """The media type to answer in: the offered one the ``Accept`` header ranks highest
    (ties: the order of ``offered``).

    >>> negotiate("application/ld+json, */*;q=0.1")
    'application/ld+json'
    >>> negotiate(None)
    'application/json'

    Raises:
        NotAcceptable: none offered is accepted.
    """
    if not accept or not accept.strip():
        return offered[0]
    best, best_q = None, 0.0
    ranges = []
    for item in accept.split(","):
        media, *params = [p.strip() for p in item.split(";")]
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        ranges.append((media.lower(), q))
    for o in offered:
        main = o.split("/")[0]
        # the most specific range that matches decides (RFC 9110 §12.5.1)
        hit = next((q for m, q in ranges if m == o), None)
        if hit is None:
            hit = next((q for m, q in ranges if m == f"{main}/*"), None)
        if hit is None:
            hit = next((q for m, q in ranges if m == "*/*"), 0.0)
        if hit > best_q:
            best, best_q = o, hit
    if best is None:
        raise NotAcceptable(f"this answer is offered as {', '.join(offered)}; the request "
                            f"accepts none of them (Accept: {accept[:200]})")
    return best


@cache
def core_context() -> dict[str, Any]:
    text = resources.files("zhongshu.protocol.ngsild").joinpath(
        "contexts", CORE).read_text(encoding="utf-8")
    return dict(json.loads(text))


def city_context(all_offers: list[Offer], base: str) -> dict[str, Any]:
    """The city's context: each offered type and attribute by its full URI, then the core
    context (last, as the spec orders it)."""
    terms: dict[str, str] = {}
    for o in all_offers:
        m = o.mapping
        terms[m.type] = m.expand(m.type)
        for a in m.attributes:
            terms[a] = m.expand(a)
    return {"@context": [dict(sorted(terms.items())), base + CONTEXTS_PATH + CORE]}


def link(base: str) -> str:
    """The ``Link`` header that names the city's context."""
    return (f'<{base}{CONTEXTS_PATH}{CITY}>; rel="http://www.w3.org/ns/json-ld#context"; '
            'type="application/ld+json"')
