"""``zhongshu ledger``: keys, verification, proofs, receipts and owners' usage reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from zhongshu.errors import LedgerInvalid, NotFound, ZhongshuError

ledger_app = typer.Typer(help="The ledger: verify it, prove entries, check receipts.",
                         no_args_is_help=True)
out = Console(width=None if sys.stdout.isatty() else 240)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 240)

DirOpt = Annotated[Path | None, typer.Option("--dir", help="the city folder (local ledger)")]
UrlOpt = Annotated[str | None, typer.Option(envvar="ZHONGSHU_URL", help="a hub's URL")]
TokenOpt = Annotated[str | None, typer.Option(envvar="ZHONGSHU_TOKEN", help="bearer token")]
KeyOpt = Annotated[str | None, typer.Option("--log-key", help="the log's verifier key (vkey) "
                                            "to pin; default: the hub's own key file or "
                                            "answer")]


def _ledger(city_dir: Path, existing: bool = True) -> Any:
    """The city's ledger, as its hub's composition root opens it for a tool (no sequencer).

    Raises:
        NotFound: ``existing`` and the hub has not created its ledger yet, or the city runs
            without one.
    """
    from zhongshu.config import load_city
    from zhongshu.node import Node

    city = load_city(city_dir)
    if existing and not (city.state_dir / "ledger.db").exists():
        raise NotFound(f"{city_dir} has no ledger yet (it is created when the hub first runs)")
    ledger = Node.open(city).ledger
    if ledger is None:
        raise NotFound(f"{city_dir} runs without a ledger (`[ledger] enabled = false`)")
    return ledger


def _get(url: str, path: str, token: str | None = None, **params: Any) -> Any:
    import httpx

    from zhongshu.client import Hub

    try:
        with Hub(url, token, timeout=30) as hub:
            return hub.get(path, **params)
    except httpx.HTTPError as e:
        raise ZhongshuError(f"cannot reach the hub at {url}: {e}") from None
    except ZhongshuError as e:  # the code too, for scripts: `error: not_found: …`
        raise ZhongshuError(f"{e.code}: {e.message}") from None


@ledger_app.command("key")
def key(city_dir: Annotated[Path, typer.Option("--dir", help="the city folder")] = Path(".")
        ) -> None:
    """Print this hub's ledger origin and verifier keys (created on first use): give the
    log key to verifiers and witnesses, the witness key to the hubs you witness."""
    lg = _ledger(city_dir, existing=False)
    assert lg.witness_key is not None  # a hub's own ledger always has its witness key
    out.print(f"origin   {lg.origin}\nlog      {lg.log_key.verifier.vkey}\n"
              f"witness  {lg.witness_key.verifier.vkey}", highlight=False, soft_wrap=True)


def _known(files: list[Path]) -> list[Any]:
    from zhongshu.ledger import note

    known = []
    for f in files:
        text = f.read_text(encoding="utf-8")
        try:
            known.append(note.parse_checkpoint(json.loads(text)["checkpoint"]))
        except (ValueError, KeyError, TypeError):
            known.append(note.parse_checkpoint(text))
    return known


@ledger_app.command("verify")
def verify(city_dir: DirOpt = None, url: UrlOpt = None, log_key: KeyOpt = None,
           checkpoint: Annotated[list[Path] | None, typer.Option(
               help="a checkpoint (or receipt bundle) obtained earlier, e.g. from a witness: "
                    "the log must still agree with it")] = None) -> None:
    """Verify a whole ledger: recompute every hash, check every checkpoint's signature and
    that all checkpoints (and those you bring) lie on one append-only tree."""
    from zhongshu.ledger import note
    from zhongshu.ledger import verify as v

    known = _known(checkpoint or [])
    with Progress(TextColumn("verifying"), BarColumn(), TextColumn("{task.completed:,} entries"),
                  console=err, transient=True, disable=not err.is_terminal) as bar:
        if city_dir is not None:
            lg = _ledger(city_dir)
            pinned = note.Verifier.parse(log_key) if log_key else lg.log_key.verifier
            task = bar.add_task("v", total=lg.size)
            report = v.verify_store(lg.store, pinned, known,
                                    lambda n: bar.update(task, completed=n))
        elif url is not None:
            report = _verify_remote(url, log_key, known, bar)
        else:
            raise typer.BadParameter("give --dir (a local ledger) or --url (a hub)")
    for n in report.notes:
        err.print(f"note: {n}", highlight=False)
    if not report.ok:
        for p in report.problems:
            out.print(f"[red]FAIL[/] {p}", highlight=False)
        raise LedgerInvalid(f"the ledger does not verify ({len(report.problems)} problem(s))")
    out.print(f"[green]OK[/] {report.size:,} entries, {report.checkpoints} checkpoints, every "
              "hash and signature verified", highlight=False)


def _verify_remote(url: str, log_key: str | None, known: list[Any], bar: Any) -> Any:
    from zhongshu.ledger import note
    from zhongshu.ledger import verify as v
    from zhongshu.ledger.layout import tile_path

    report = v.Report()
    if log_key is None:
        log_key = _get(url, "/v1/ledger/key").json()["log"]
        report.notes.append("log key taken from the hub itself; pin it with --log-key")
    pinned = note.Verifier.parse(log_key)
    ckpts = [note.parse_checkpoint(c["note"]) for c in _get(url, "/v1/ledger/checkpoints").json()]
    size = max([c.size for c in ckpts] or [0])
    task = bar.add_task("v", total=size)
    tiles: dict[tuple[int, int], bytes] = {}

    def fetch(level: int, n: int, width: int) -> bytes:
        if (level, n) not in tiles or len(tiles[(level, n)]) < width * 32:
            tiles.clear() if len(tiles) > 1024 else None
            tiles[(level, n)] = _get(url, "/v1/ledger/" + tile_path(level, n, width)).content
        return tiles[(level, n)]

    def stored(level: int, idx: int) -> bytes | None:
        if level == 0 or level % 8 or idx // 256 * 256 + 256 > size >> level:
            return None  # only full tiles of levels 8, 16… are checked against the leaves
        blob = fetch(level // 8, idx // 256, 256)
        return blob[(idx % 256) * 32:(idx % 256) * 32 + 32]

    v.check_tree(v.leaves_from_tiles(fetch, size), ckpts, pinned, report, stored, known,
                 lambda n: bar.update(task, completed=n))
    return report


def _bundle(index: int, city_dir: Path | None, url: str | None, token: str | None) -> Any:
    if city_dir is not None:
        from zhongshu.protocol.routes.ledger import bundle

        lg = _ledger(city_dir)
        body = lg.entry(index)
        if body is None:
            raise NotFound(f"no entry {index} (the log has {lg.size})")
        ckpt = lg.checkpoint_covering(index) or (lg.publish() and
                                                 lg.checkpoint_covering(index))
        if not ckpt:
            raise NotFound(f"entry {index} is not yet in a checkpoint")
        return bundle(lg, index, body, ckpt)
    if url is None:
        raise typer.BadParameter("give --dir (a local ledger) or --url and --token (a hub)")
    return _get(url, f"/v1/ledger/receipts/{index}", token).json()


@ledger_app.command("prove")
def prove(index: Annotated[int, typer.Argument(help="the entry's index (from a receipt)")],
          city_dir: DirOpt = None, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Print a self-contained receipt for entry INDEX: the entry, the first checkpoint that
    includes it, the inclusion proof and the keys (check it with `check-receipt`)."""
    out.print_json(json.dumps(_bundle(index, city_dir, url, token)))


@ledger_app.command("check-receipt")
def check_receipt(file: Annotated[Path, typer.Argument(help="a receipt bundle (`prove`)")],
                  log_key: KeyOpt = None,
                  answer: Annotated[Path | None, typer.Option(
                      help="the exact result bytes received (canonical JSON rows or Arrow "
                           "stream): check the entry records them")] = None) -> None:
    """Check a receipt offline: entry, inclusion proof, checkpoint signature, cosignatures."""
    from zhongshu.ledger import verify as v

    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise LedgerInvalid(f"cannot read {file}: {e}") from None
    report = v.check_receipt(data, log_key, answer=answer.read_bytes() if answer else None)
    for n in report.notes:
        err.print(f"note: {n}", highlight=False)
    if not report.ok:
        for p in report.problems:
            out.print(f"[red]FAIL[/] {p}", highlight=False)
        raise LedgerInvalid("the receipt does not verify")
    out.print(f"[green]OK[/] entry {data['receipt']['index']} is in checkpoint "
              f"{report.size} of {data['receipt']['ledger']}", highlight=False)


@ledger_app.command("usage")
def usage(dataset: Annotated[str, typer.Option(help="one of your datasets")],
          since: Annotated[str | None, typer.Option(help="ISO 8601 time, e.g. "
                                                    "2026-11-25T00:00:00Z")] = None,
          url: UrlOpt = None, token: TokenOpt = None,
          fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table"
          ) -> None:
    """Every exchange that read DATASET (for its owner or an auditor), each with its
    inclusion proof checked against the hub's latest checkpoint."""
    from zhongshu.ledger import canonical, merkle, note

    if url is None:
        raise typer.BadParameter("give --url and --token (the owner's), or ZHONGSHU_URL")
    data = _get(url, "/v1/ledger/usage", token, dataset=dataset,
                **({"since": since} if since else {})).json()
    ckpt = note.parse_checkpoint(data["checkpoint"])
    bad = [e["index"] for e in data["entries"] if not merkle.verify_inclusion(
        e["index"], ckpt.size, merkle.leaf_hash(canonical.dumps(e["entry"])),
        [bytes.fromhex(h) for h in e["proof"]], ckpt.root)]
    if fmt == "json":
        out.print_json(json.dumps(data))
    else:
        t = Table("index", "time", "kind", "caller", "purpose", "columns", "rows", "outcome")
        for e in data["entries"]:
            f = e["entry"]
            t.add_row(str(e["index"]), f["time"], f["kind"], f["caller"], f.get("purpose", ""),
                      ", ".join(f.get("columns", {}).get(dataset, [])),
                      str(f.get("rows", "")), f["outcome"])
        out.print(t)
    if bad:
        raise LedgerInvalid(f"inclusion proofs fail for entries {bad}")
    err.print(f"{len(data['entries'])} entries, every proof verified against checkpoint "
              f"{ckpt.size}", highlight=False)
