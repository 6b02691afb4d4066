"""The catalog a hub offers one peer: signed, expiring, and checked as data by the receiver.

A hub publishes to each peer (``GET /v1/federation/catalog``, asked by the peer as its
member of kind ``hub``) the datasets it grants that peer, with only the granted columns
(an unlisted dataset stays unlisted at the receiver)::

    {"catalog": {"version": 1, "hub": "hub-xihu", "for": "hub-city",
                 "issued_at": 1764690000, "expires_at": 1764690600,
                 "datasets": [{"name": "xihu_grid.events", "title": "…", "description": "…",
                               "listed": true,
                               "purposes": ["city-operations"], "area_column": null,
                               "columns": [{"name", "type", "classification",
                                            "description"}]}]},
     "signature": "base64 Ed25519 over b'zhongshu-catalog-v1\\n' + canonical(catalog)"}

``canonical`` is JSON with sorted keys and no spaces (RFC 8785 for the strings and integers a
catalog holds). The signature is checked against the peer's key pinned in ``city.toml``
— never a key the document names — so a catalog signed by another key is refused. Everything
in it is data: names must match the dataset and column patterns and lie in the peer's
namespace, types are plain type names, sizes are bounded; anything else refuses the whole
catalog (a lying peer gets no partial trust).

>>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
>>> key = Ed25519PrivateKey.generate()
>>> doc = sign_catalog({"version": 1, "hub": "hub-xihu", "for": "hub-city", "issued_at": 100,
...                     "expires_at": 700, "datasets": []}, key)
>>> verify_catalog(doc, key.public_key(), hub="hub-xihu", for_="hub-city",
...                namespace="xihu", now=200).expires_at
700
>>> verify_catalog(doc, Ed25519PrivateKey.generate().public_key(), hub="hub-xihu",
...                for_="hub-city", namespace="xihu", now=200)
Traceback (most recent call last):
...
zhongshu.errors.PeerUnavailable: the catalog of `hub-xihu` is not signed by its key in city.toml
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from zhongshu.config import Column, DatasetConfig
from zhongshu.config._base import COLUMN, DATASET, NAME
from zhongshu.errors import PeerUnavailable

CATALOG_PATH = "/v1/federation/catalog"
DOMAIN = b"zhongshu-catalog-v1\n"
MAX_SKEW_S = 300
MAX_VALID_S = 86_400
MAX_DATASETS = 1000
MAX_COLUMNS = 500
MAX_TEXT = 2000
CLASSIFICATIONS = ("public", "internal", "personal", "sensitive")
_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_ ]{0,40}(\(\s*\d{1,3}(\s*,\s*\d{1,3})?\s*\))?(\[\])?$")


def canonical(obj: Any) -> bytes:
    """``obj`` as canonical JSON bytes (sorted keys, no spaces, UTF-8).

    >>> canonical({"b": 1, "a": ["中", 2]})
    b'{"a":["\\xe4\\xb8\\xad",2],"b":1}'
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def sign_catalog(catalog: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """The published document: ``catalog`` and its signature."""
    sig = key.sign(DOMAIN + canonical(catalog))
    return {"catalog": catalog, "signature": base64.b64encode(sig).decode()}


@dataclass(frozen=True)
class OfferedDataset:
    """One dataset a peer offers this hub, as this hub's catalog will hold it."""

    config: DatasetConfig
    purposes: tuple[str, ...]


@dataclass(frozen=True)
class Offer:
    """A verified catalog of one peer."""

    hub: str
    issued_at: int
    expires_at: int
    datasets: tuple[OfferedDataset, ...]

    def stale(self, now: float) -> bool:
        """Whether it has expired (its datasets then answer ``peer_unavailable``)."""
        return now >= self.expires_at


def _text(value: Any, what: str, hub: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise _bad(hub, f"{what} is not a short text")
    return value


def _bad(hub: str, why: str) -> PeerUnavailable:
    return PeerUnavailable(f"the catalog of `{hub}` is refused: {why}", hub=hub)


def verify_catalog(doc: Any, key: Ed25519PublicKey, *, hub: str, for_: str, namespace: str,
                   now: float) -> Offer:
    """The offer in ``doc`` once its signature, parties, times and every name are checked.

    An expired catalog verifies (the caller marks it stale); one issued in the future (beyond
    ``MAX_SKEW_S``) or valid longer than ``MAX_VALID_S`` does not.

    Raises:
        PeerUnavailable: anything wrong, naming the peer (never echoing its values).
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("catalog"), dict) or \
            not isinstance(doc.get("signature"), str):
        raise _bad(hub, "not a signed catalog")
    catalog: dict[str, Any] = doc["catalog"]
    try:
        sig = base64.b64decode(doc["signature"], validate=True)
        key.verify(sig, DOMAIN + canonical(catalog))
    except (binascii.Error, ValueError, InvalidSignature, TypeError):
        raise PeerUnavailable(f"the catalog of `{hub}` is not signed by its key in city.toml",
                              hub=hub) from None
    if catalog.get("version") != 1:
        raise _bad(hub, "unknown version")
    if catalog.get("hub") != hub or catalog.get("for") != for_:
        raise _bad(hub, f"it is not the catalog of `{hub}` for `{for_}`")
    issued, expires = catalog.get("issued_at"), catalog.get("expires_at")
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in (issued, expires)):
        raise _bad(hub, "issued_at and expires_at are integers")
    assert isinstance(issued, int) and isinstance(expires, int)
    if issued > now + MAX_SKEW_S or not 0 < expires - issued <= MAX_VALID_S:
        raise _bad(hub, "its validity period is not believable")
    items = catalog.get("datasets")
    if not isinstance(items, list) or len(items) > MAX_DATASETS:
        raise _bad(hub, "datasets is not a list of at most 1000")
    seen: set[str] = set()
    out = [_dataset(item, hub, namespace, seen) for item in items]
    return Offer(hub, issued, expires, tuple(out))


def _dataset(item: Any, hub: str, namespace: str, seen: set[str]) -> OfferedDataset:
    if not isinstance(item, dict):
        raise _bad(hub, "a dataset is not an object")
    name = item.get("name")
    if not isinstance(name, str) or not re.fullmatch(DATASET, name) or \
            namespace and not name.startswith(f"{namespace}_"):
        form = f"{namespace}_<ns>.<name>" if namespace else "<ns>.<name>"
        raise _bad(hub, f"a dataset name is not of the form `{form}`")
    if name in seen:
        raise _bad(hub, f"`{name}` is offered twice")
    seen.add(name)
    purposes = item.get("purposes")
    if not isinstance(purposes, list) or not purposes or not all(
            isinstance(p, str) and len(p) <= 100 and re.fullmatch(NAME, p) for p in purposes):
        raise _bad(hub, f"`{name}`: purposes is not a list of names")
    cols = item.get("columns")
    if not isinstance(cols, list) or not 0 < len(cols) <= MAX_COLUMNS:
        raise _bad(hub, f"`{name}`: columns is not a non-empty list")
    columns: list[Column] = []
    for c in cols:
        if not isinstance(c, dict):
            raise _bad(hub, f"`{name}`: a column is not an object")
        cname, ctype, cls = c.get("name"), c.get("type"), c.get("classification")
        if not isinstance(cname, str) or not re.fullmatch(COLUMN, cname) or len(cname) > 100:
            raise _bad(hub, f"`{name}`: a column name is not a plain name")
        if not isinstance(ctype, str) or not _TYPE.fullmatch(ctype):
            raise _bad(hub, f"`{name}`: column `{cname}` has no plain type name")
        if cls not in CLASSIFICATIONS:
            raise _bad(hub, f"`{name}`: column `{cname}` has no known classification")
        columns.append(Column(name=cname, type=ctype, classification=cls,
                              description=_text(c.get("description"), "a description", hub)))
    listed = item.get("listed", True)
    if not isinstance(listed, bool):
        raise _bad(hub, f"`{name}`: listed is true or false")
    area = item.get("area_column")
    if area is not None and area not in {c.name for c in columns}:
        raise _bad(hub, f"`{name}`: area_column is not one of its columns")
    try:
        config = DatasetConfig(name=name, title=_text(item.get("title"), "a title", hub),
                               description=_text(item.get("description"), "a description",
                                                 hub),
                               source=hub, table=name, columns=columns, area_column=area,
                               listed=listed)
    except ValueError:
        raise _bad(hub, f"`{name}` does not describe a dataset") from None
    return OfferedDataset(config, tuple(purposes))
