"""The NGSI-LD face of the hub (ETSI GS CIM 009, read-only) at ``/ngsi-ld/v1/``: the
datasets their owners map to entity types (``[datasets.entity]``, ``zhongshu.config.entity``)
served as entities, each request one governed exchange of its caller.

One module per job: ``routes`` (the endpoints), ``params`` (strict query parameters),
``qlang`` (the ``q`` language), ``geo`` (geo-queries), ``sql`` (one governed SELECT per
request), ``render`` (entities in their forms), ``media`` (content negotiation, contexts),
``problems`` (ProblemDetails), ``offers`` (what the city offers, and to whom).
"""

from zhongshu.protocol.ngsild.routes import ROOT, add_routes

__all__ = ["ROOT", "add_routes"]
