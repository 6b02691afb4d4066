"""The ledger endpoints of the hub protocol.

Public (anyone may check that the log only grows): the checkpoint, checkpoints, proofs,
hash tiles (c2sp.org/tlog-tiles) and keys. Entry contents only to the entry's caller, the
owners of the datasets it names, and members with the ``auditor`` role; everyone else gets
``404``, exactly as for an entry that does not exist.
"""

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response

from zhongshu.errors import BadRequest, LedgerInvalid, LedgerUnavailable, NotFound
from zhongshu.ledger import Ledger, iso_ms, layout, merkle
from zhongshu.ledger import note as notes
from zhongshu.policy.identity import Caller
from zhongshu.protocol.contract import errors as answers
from zhongshu.query.service import QueryService

log = logging.getLogger("zhongshu.protocol")
# an index or size beyond any log (and beyond what the stores' 64-bit integers and JSON
# numbers hold) is a bad request, not an internal error
MAX = 2**53 - 1
Index = Annotated[int, Path(ge=0, le=MAX)]
__all__ = ["add_ledger_routes", "bundle", "can_read"]


def _parse_tile(rest: str) -> tuple[int, int]:
    try:
        return layout.parse_tile_path(rest)
    except ValueError as e:
        raise NotFound(str(e)) from None


def can_read(who: Caller, fields: dict[str, Any], service: QueryService) -> bool:
    """Whether ``who`` may read an entry: its caller (or the caller a scenario acted for), an
    owner of a dataset it names, or an auditor (and, for a governance change, the member who
    made it or whose grant it is)."""
    if who.has_role("auditor") or fields.get("caller") in (who.name, f"member:{who.name}"):
        return True
    if fields.get("on_behalf_of") == who.name:
        return True
    target = fields.get("target")
    if isinstance(target, dict) and target.get("owner") == who.name:
        return True
    for name in fields.get("datasets", []):
        ds = service.catalog.dataset(name)
        if ds is not None and ds.owner == who.name:
            return True
    return False


def add_ledger_routes(app: FastAPI, ledger: Ledger, service: QueryService, caller: Any,
                      errors: dict[int | str, dict[str, Any]]) -> None:
    """Mount the ledger endpoints (and the witness, when this hub witnesses other logs)."""
    witness = ledger.witness({w.origin: notes.Verifier.parse(w.key)
                              for w in service.city.ledger.witnessing})

    def _publish() -> notes.Checkpoint | None:
        """Sign a checkpoint now; a hub that cannot (its log no longer matches what it signed,
        its key or store fails) is a server-side failure: ``503 ledger_unavailable``, never
        the caller's ``400 ledger_invalid``, and without the reason (the operator's health and
        log have it)."""
        try:
            return ledger.publish()
        except LedgerInvalid as e:
            log.error("checkpoint not signed: %s", e)
        except Exception:
            log.exception("checkpoint not signed")
        raise LedgerUnavailable("the ledger cannot sign a checkpoint now; try again "
                                    "later (the hub's operators are told)")

    def _ckpt() -> notes.Checkpoint:
        c = ledger.checkpoint()
        if c is None:
            c = _publish()
        if c is None:
            raise NotFound("the ledger is empty: no checkpoint yet")
        return c

    def _ckpt_json(c: notes.Checkpoint) -> dict[str, Any]:
        cosigned = ledger.cosigners(c)
        return {"origin": c.origin, "size": c.size, "root": c.root.hex(), "note": c.text,
                "cosigned_by": cosigned, "quorum": ledger.quorum(), "final": ledger.final(c)}

    @app.get("/v1/ledger/checkpoint", tags=["ledger"], responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}},
                          "application/json": {"schema": {"type": "object"}}},
              "description": "the C2SP signed note, or (`?format=json`) it and whether it is "
                             "final"}, **answers(404, 503)})
    def checkpoint(format: Annotated[str, Query(pattern="^(note|json)$")] = "note"
                   ) -> Response:
        """The latest signed checkpoint (C2SP signed note: origin, size, base64 root,
        signatures — the log's and its witnesses' cosignatures); ``?format=json`` adds
        whether it is final (cosigned by the quorum of witnesses)."""
        c = _ckpt()
        if format == "json":
            return Response(orjson.dumps(_ckpt_json(c)), media_type="application/json")
        return PlainTextResponse(c.text)

    @app.get("/v1/ledger/checkpoints", tags=["ledger"])
    def checkpoints() -> list[dict[str, Any]]:
        """Every checkpoint this hub has signed, oldest first, with cosignatures."""
        return [_ckpt_json(c) for c in ledger.checkpoints()]

    @app.get("/v1/ledger/key", tags=["ledger"])
    def keys() -> dict[str, Any]:
        """This hub's verifier keys (C2SP vkeys): its log key and its witness key."""
        return {"origin": ledger.origin, "log": ledger.log_key.verifier.vkey,
                "witness": ledger.witness_key.verifier.vkey if ledger.witness_key else None}

    def _size(size: int) -> int:
        if size > ledger.size:
            raise BadRequest(f"the log has {ledger.size} entries; no tree of size {size} yet")
        return size

    @app.get("/v1/ledger/proof/inclusion", tags=["ledger"], responses=answers(400))
    def inclusion(index: Annotated[int, Query(ge=0, le=MAX)],
                  size: Annotated[int, Query(ge=1, le=MAX)]
                  ) -> dict[str, Any]:
        """The audit path of entry ``index`` in the tree of ``size`` (RFC 9162)."""
        if index >= size:
            raise BadRequest(f"index {index} is not in a tree of size {size}")
        return {"index": index, "size": size,
                "hashes": [h.hex() for h in ledger.inclusion(index, _size(size))]}

    @app.get("/v1/ledger/proof/consistency", tags=["ledger"], responses=answers(400))
    def consistency(from_: Annotated[int, Query(alias="from", ge=0, le=MAX)],
                    to: Annotated[int, Query(ge=0, le=MAX)]) -> dict[str, Any]:
        """The proof that the tree of size ``from`` is a prefix of the tree of size ``to``."""
        if from_ > to:
            raise BadRequest("`from` must not exceed `to`")
        return {"from": from_, "to": to,
                "hashes": [h.hex() for h in ledger.consistency(from_, _size(to))]}

    @app.get("/v1/ledger/tile/{level}/{rest:path}", tags=["ledger"], response_class=Response,
             responses={
        200: {"content": {"application/octet-stream": {
            "schema": {"type": "string", "format": "binary"}}}, "description": "the hashes"},
        **answers(404)})
    def tile(level: int, rest: str) -> Response:
        """A hash tile (c2sp.org/tlog-tiles): the hashes of subtrees of height 8·L, 256 to
        a tile (``.p/W`` for a partial one), concatenated."""
        if not 0 <= level <= 7:
            raise NotFound("tile levels are 0 to 7")
        n, width = _parse_tile(rest)
        blob = ledger.tile(level * 8, n)
        if len(blob) < width * 32:
            raise NotFound("that tile is not complete yet at this width")
        return Response(blob[:width * 32], media_type="application/octet-stream")

    def _entry(index: int, who: Caller) -> tuple[bytes, dict[str, Any]]:
        body = ledger.entry(index)
        fields: dict[str, Any] = orjson.loads(body) if body is not None else {}
        if body is None or not can_read(who, fields, service):
            raise NotFound(f"no entry {index} that you may read (entries are shown to their "
                           "caller, the owners of the datasets they name, and auditors)")
        return body, fields

    @app.get("/v1/ledger/entries/{index}", tags=["ledger"], responses={
        200: {"content": {"application/json": {"schema": {"type": "object"}}},
              "description": "the canonical bytes"}, **errors, **answers(404)})
    def entry_bytes(index: Index, who: Annotated[Caller, Depends(caller)]) -> Response:
        """The entry's canonical bytes (RFC 8785): to its caller, the owners of the datasets
        it names, and auditors; everyone else gets 404."""
        body, _ = _entry(index, who)
        return Response(body, media_type="application/json")

    @app.get("/v1/ledger/receipts/{index}", tags=["ledger"],
             responses=errors | answers(404, 503))
    def receipt(index: Index, who: Annotated[Caller, Depends(caller)]) -> dict[str, Any]:
        """Everything needed to check an entry offline (`zhongshu ledger check-receipt`):
        the entry, the first checkpoint that includes it, the inclusion proof, the keys."""
        body, _ = _entry(index, who)
        ckpt = ledger.checkpoint_covering(index)
        if ckpt is None:
            _publish()
            ckpt = ledger.checkpoint_covering(index)
        if ckpt is None:
            raise NotFound(f"entry {index} is not yet in a checkpoint; try again in a second")
        return bundle(ledger, index, body, ckpt)

    @app.get("/v1/ledger/usage", tags=["ledger"], responses=errors | answers(400, 404, 503))
    async def usage(dataset: str, who: Annotated[Caller, Depends(caller)],
                    since: str | None = None,
                    after: Annotated[int, Query(ge=-1, le=MAX)] = -1,
                    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> dict[str, Any]:
        """Every exchange, refusal and change that named ``dataset`` (owners and auditors
        only), from ``since`` (ISO 8601 UTC), at most ``limit`` after index ``after``
        (``next`` continues), each with its inclusion proof in the latest checkpoint."""
        return await run_in_threadpool(_usage, dataset, who, since, after, limit)

    def _usage(dataset: str, who: Caller, since: str | None, after: int, limit: int
               ) -> dict[str, Any]:
        ds = service.catalog.dataset(dataset)
        if ds is None or not (ds.owner == who.name or who.has_role("auditor")):
            raise NotFound(f"no dataset `{dataset}` whose usage you may read (owners and "
                           "auditors only)")
        start, floor = after + 1, ""
        if since:
            # writers in other processes stamp their own clocks: start a minute early and
            # compare each entry's own time
            ms = _ms(since)
            start, floor = max(start, ledger.first_since(ms - 60_000)), iso_ms(ms)
        ckpt = _ckpt()
        out: list[dict[str, Any]] = []
        nxt = None
        for idx in ledger.reading(dataset, start):
            if idx >= ckpt.size:
                break
            if len(out) == limit:
                nxt = out[-1]["index"]
                break
            body = ledger.entry(idx)
            assert body is not None
            fields = orjson.loads(body)
            if fields.get("time", "") < floor:
                continue
            out.append({"index": idx, "entry": fields,
                        "proof": [h.hex() for h in ledger.inclusion(idx, ckpt.size)]})
        return {"dataset": dataset, "checkpoint": ckpt.text, "entries": out, "next": nxt}

    if witness is not None and witness.logs:
        @app.post("/v1/ledger/witness/add-checkpoint", tags=["ledger"],
                  response_class=PlainTextResponse)
        async def add_checkpoint(request: Request) -> Response:
            """c2sp.org/tlog-witness: cosign a peer hub's checkpoint once it is shown to
            extend the last one this hub cosigned; keep evidence of a fork."""
            body = await request.body()
            answer = await run_in_threadpool(witness.add_checkpoint, body)
            return Response(answer.body, status_code=answer.status,
                            media_type=answer.content_type)

        @app.get("/v1/ledger/witness/evidence", tags=["ledger"])
        def evidence() -> list[dict[str, Any]]:
            """Evidence this witness kept of logs that misbehaved (a fork: two checkpoints of
            one size; an inconsistent one), newest first — public, like the logs' notes."""
            return ledger.evidence()


def bundle(ledger: Ledger, index: int, body: bytes, ckpt: "notes.Checkpoint") -> dict[str, Any]:
    """A self-contained receipt: entry, checkpoint, proof and the keys to check them."""
    return {"receipt": {"ledger": ledger.origin, "index": index,
                        "entry_hash": merkle.leaf_hash(body).hex()},
            "entry": body.decode(), "checkpoint": ckpt.text,
            "proof": [h.hex() for h in ledger.inclusion(index, ckpt.size)],
            "log_key": ledger.log_key.verifier.vkey,
            "witness_keys": [w.key for w in ledger.settings.witnesses],
            "quorum": ledger.quorum()}


def _ms(since: str) -> int:
    try:
        t = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest("`since` is an ISO 8601 time, e.g. 2026-11-25T08:00:00Z") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1000)

