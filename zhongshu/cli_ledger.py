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
                                            "to pin")]
VerifyKeyOpt = Annotated[str | None, typer.Option(
    "--log-key", help="the log's verifier key (vkey) to check against; with --dir, default: "
                      "the key the city pins ([ledger] log_key in city.toml, or ledger.pin)")]


def _ledger(city_dir: Path, existing: bool = True) -> Any:
    """The city's ledger, as its hub's composition root opens it for a tool (no sequencer).

    Raises:
        NotFound: ``existing`` and the hub has not created its ledger yet, or the city runs
            without one.
    """
    from zhongshu.config import load_city
    from zhongshu.node import Node

    city = load_city(city_dir)
    if existing and not city.store.url and not (city.state_dir / "ledger.db").exists():
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


@ledger_app.command("pin")
def pin_key(city_dir: Annotated[Path, typer.Option("--dir", help="the city folder")] = Path(".")
            ) -> None:
    """Pin this hub's current log key in ledger.pin beside city.toml (the hub does it when it
    creates the key; this is for a ledger older than pinning). Compare `zhongshu ledger key`
    with your records or a witness's configuration first: pinning trusts the key file."""
    from zhongshu.config import load_city
    from zhongshu.ledger import note, origin_of, pin

    city = load_city(city_dir)
    found = pin.read(city)
    if found is not None:
        raise LedgerInvalid(f"the log key is already pinned in {found.where} "
                            f"({found.key.vkey}); remove that pin first to pin another")
    path = city.state_dir / "ledger.key"
    if not path.exists():
        raise NotFound(f"{city_dir} has no log key yet (the hub creates and pins it when it "
                       "first runs)")
    key = note.Signer.load_or_create(path, origin_of(city), note.ED25519).verifier
    pin.record(city, key)
    out.print(f"pinned {key.vkey} in {pin.PIN_FILE}", highlight=False, soft_wrap=True)


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
def verify(city_dir: DirOpt = None, url: UrlOpt = None, log_key: VerifyKeyOpt = None,
           checkpoint: Annotated[list[Path] | None, typer.Option(
               help="a checkpoint (or receipt bundle) obtained earlier, e.g. from a witness: "
                    "the log must still agree with it")] = None) -> None:
    """Verify a whole ledger: recompute every hash, check every checkpoint's signature
    against a pinned log key (never the key file of the folder checked) and that all
    checkpoints (and those you bring) lie on one append-only tree."""
    from zhongshu.ledger import verify as v

    known = _known(checkpoint or [])
    with Progress(TextColumn("verifying"), BarColumn(), TextColumn("{task.completed:,} entries"),
                  console=err, transient=True, disable=not err.is_terminal) as bar:
        if city_dir is not None:
            store, pinned = _local(city_dir, log_key)
            task = bar.add_task("v", total=store.size())
            report = v.verify_store(store, pinned, known,
                                    lambda n: bar.update(task, completed=n))
        elif url is not None:
            if log_key is None:
                raise LedgerInvalid("no log key pinned: give --log-key (from your records, "
                                    "a witness's configuration or an earlier `zhongshu ledger "
                                    "key`); a key read from the hub itself proves nothing")
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
              f"hash and signature verified against {report.key}", highlight=False)


def _local(city_dir: Path, log_key: str | None) -> tuple[Any, Any]:
    """The city's ledger store, opened read-side only (no key file read), and the key to
    check it against: ``log_key``, else the city's pin.

    Raises:
        NotFound: the city has no ledger yet.
        LedgerInvalid: no key is given and the city pins none.
    """
    from zhongshu.config import load_city
    from zhongshu.ledger import note, pin
    from zhongshu.ledger.store import SqliteLedgerStore
    from zhongshu.node import store_url

    city = load_city(city_dir)
    url = store_url(city)
    if not url and not (city.state_dir / "ledger.db").exists():
        raise NotFound(f"{city_dir} has no ledger yet (it is created when the hub first runs)")
    if log_key is not None:
        pinned = note.Verifier.parse(log_key)
    else:
        found = pin.read(city)
        if found is None:
            raise LedgerInvalid(
                f"no log key pinned: {city_dir} has no [ledger] log_key in city.toml and no "
                f"{pin.PIN_FILE}, and the key file in state/ cannot vouch for the log it "
                "signs; give --log-key, or check `zhongshu ledger key` against your records "
                "and run `zhongshu ledger pin`")
        pinned = found.key
        err.print(f"note: log key pinned in {found.where}", highlight=False)
    if url:  # the ledger in the city's PostgreSQL store ([store] url)
        from zhongshu.ledger.postgres import PostgresLedgerStore

        return PostgresLedgerStore(url), pinned
    return SqliteLedgerStore(city.state_dir / "ledger.db"), pinned


def _verify_remote(url: str, log_key: str, known: list[Any], bar: Any) -> Any:
    from zhongshu.ledger import note
    from zhongshu.ledger import verify as v
    from zhongshu.ledger.layout import tile_path

    report = v.Report()
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
    from zhongshu.ledger import entry, merkle, note

    if url is None:
        raise typer.BadParameter("give --url and --token (the owner's), or ZHONGSHU_URL")
    data = _get(url, "/v1/ledger/usage", token, dataset=dataset,
                **({"since": since} if since else {})).json()
    ckpt = note.parse_checkpoint(data["checkpoint"])
    bad = [e["index"] for e in data["entries"] if not merkle.verify_inclusion(
        e["index"], ckpt.size, merkle.leaf_hash(entry.canonical_bytes(e["entry"])),
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
