"""The ``zhongshu`` command: init | connect | serve | demo | query | catalog | sources | members.

Errors are one clear line (exit status 1, or 2 for bad usage); ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from zhongshu.cli_connect import connect, sources_app
from zhongshu.cli_db import db_app
from zhongshu.cli_federation import federation_app
from zhongshu.cli_ledger import ledger_app
from zhongshu.cli_traffic import traffic_app
from zhongshu.cli_trees import trees_app
from zhongshu.errors import ConfigError, ZhongshuError

app = typer.Typer(help="Zhongshu (中枢): the City Brain hub.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
catalog_app = typer.Typer(help="The datasets of a city.", no_args_is_help=True)
members_app = typer.Typer(help="Members and their tokens.", no_args_is_help=True)
policy_app = typer.Typer(help="What grants let through.", no_args_is_help=True)
grants_app = typer.Typer(help="Grants: who may read what, for which purpose.",
                         no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
app.add_typer(members_app, name="members")
app.add_typer(policy_app, name="policy")
app.add_typer(grants_app, name="grants")
app.add_typer(ledger_app, name="ledger")
app.add_typer(trees_app, name="trees")
app.add_typer(traffic_app, name="traffic")
app.add_typer(sources_app, name="sources")
app.add_typer(federation_app, name="federation")
app.add_typer(db_app, name="db")
app.command("connect")(connect)

# piped output is not wrapped at 80 columns (scripts should prefer --format csv/json)
out = Console(width=None if sys.stdout.isatty() else 240)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 240)
_state: dict[str, bool] = {"debug": False}

DirOpt = Annotated[Path, typer.Option("--dir", help="the city folder")]
DEFAULT_URL = "http://127.0.0.1:8400"
UnsafeWallOpt = Annotated[bool, typer.Option(
    "--unsafe-single-wall", help="serve even where the DuckDB workers cannot be confined to "
    "their sources (no Landlock): the SQL firewall is then the only wall; health says "
    "degraded")]

WatchOpt = Annotated[bool, typer.Option(
    "--watch/--no-watch", help="apply changes to the city's configuration files while "
    "serving (a change that does not load is refused and the last good one serves on)")]


def _port_in_use(host: str, port: int) -> None:
    """Refuse at once (before the hub is built) a port another process listens on.

    Raises:
        ZhongshuError: the address is taken.
    """
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            s.bind((host, port))
        except OSError as e:
            raise ZhongshuError(f"cannot listen on {host}:{port}: {e.strerror} (another hub or "
                                "program is on it: stop it, or give another --port)") from None


def _allow_single_wall(allow: bool) -> None:
    if allow:  # read with the other [hub] settings' environment overrides
        os.environ["ZHONGSHU_UNSAFE_SINGLE_WALL"] = "true"


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False
          ) -> None:
    _state["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _node(city_dir: Path, serve: bool = False) -> Any:
    """The parts of the city's hub (``zhongshu.node.Node``): for a command, stores, catalog
    and the ledger recording governance changes; ``serve`` also streams and the sequencer."""
    from zhongshu.node import Node

    return Node.open(city_dir, serve=serve)


def feed_topic() -> str:
    """The MQTT topic of the demo's live passages."""
    from zhongshu.demo.live import TOPIC

    return TOPIC


# --- init -------------------------------------------------------------------------------------

@app.command()
def init(name: Annotated[str, typer.Argument(help="short name of the city, e.g. hangzhou")],
         directory: Annotated[Path | None, typer.Option("--dir", help="where to create it "
                                                           "(default: ./NAME)")] = None) -> None:
    """Scaffold a new city's configuration from the template."""
    from zhongshu.template import scaffold

    target = directory or Path(name)
    scaffold(target, name)
    out.print(f"Created city [bold]{name}[/] in {target}/. Next: connect your departments' "
              f"systems (`zhongshu connect --dir {target} --member NAME --url URL`) or describe "
              f"them in {target}/members/, then `zhongshu catalog check --dir {target}` and "
              f"`zhongshu serve --dir {target}`.")


# --- serve ------------------------------------------------------------------------------------

@app.command()
def serve(city_dir: DirOpt = Path("."),
          host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="port to listen on")] = 8400,
          unsafe_single_wall: UnsafeWallOpt = False,
          pg_port: Annotated[int | None, typer.Option(
              help="also serve the PostgreSQL wire endpoint on this port (BI tools: user = "
                   "member, password = token, database = purpose; default: [hub] pg_port, "
                   "0 = off)")] = None,
          watch: WatchOpt = True) -> None:
    """Serve a city's hub over the protocol (and ingest its declared streams)."""
    _port_in_use(host, port)
    _allow_single_wall(unsafe_single_wall)
    with _node(city_dir, serve=True) as node:
        _serve(node, host, port, node.city.hub.pg_port if pg_port is None else pg_port,
               watch=watch)


def _pg_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _serve(node: Any, host: str, port: int, pg_port: int = 0,
           pg_optional: bool = False, watch: bool = True) -> None:
    from rich.markup import escape

    from zhongshu.reload import Reloader

    service, streams = node.query, node.streams

    down = {n: s for n, s in service.health().items() if s != "ok"}
    for n, s in down.items():
        err.print(f"[yellow]warning:[/] source {n} is {s}; its datasets answer "
                  "source_unavailable until it is back")
    for d in service.catalog.datasets.values():
        if d.status in ("drift", "invalid"):
            err.print(f"[yellow]warning:[/] dataset {d.name} is unavailable: "
                      f"{escape(d.reason)}")
    out.print(f"Hub for [bold]{service.city.info.name}[/] on http://{host}:{port}  "
              f"(cockpit: /cockpit/, protocol: /v1/openapi.json, metrics: /metrics)")
    if streams is not None:
        streams.start()
    # scenarios talk to this hub over HTTP, as they would from another machine
    local = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{local}:{port}"
    reloader = Reloader(node, lambda n, state: n.app(cockpit=True, scenarios=url, url=url,
                                                     config=state),
                        report=lambda line: err.print(escape(line)))
    for name in reloader.app.current.state.scenarios:
        out.print(f"Scenario [bold]{name}[/] at /scenarios/{name}/")
    if watch:
        reloader.start()
        out.print("Following the configuration: changes to city.toml, members/, "
                  "cockpit.toml, secrets.toml and geo/ apply without a restart")
    try:
        _run(reloader, host, port, pg_port, pg_optional, local)
    finally:
        reloader.close()


def _run(reloader: Any, host: str, port: int, pg_port: int, pg_optional: bool,
         local: str) -> None:
    import asyncio

    import uvicorn

    if not pg_port:
        uvicorn.run(reloader.app, host=host, port=port, log_level="warning", access_log=False,
                    lifespan="off")
        return
    wire = reloader.node.wire(reloader.app.current)
    reloader.wire = wire
    server = uvicorn.Server(uvicorn.Config(reloader.app, host=host, port=port,
                                           log_level="warning", access_log=False,
                                           lifespan="off"))

    async def main() -> None:
        try:
            pg = await wire.start(host, pg_port)
        except OSError as e:
            if not pg_optional:
                raise
            err.print(f"[yellow]warning:[/] the wire endpoint's port {pg_port} is taken "
                      f"({e.strerror}); serving without it")
            await server.serve()
            return
        out.print(f"PostgreSQL wire endpoint on {host}:{pg_port} — e.g. PGPASSWORD=<token> "
                  f"psql -h {local} -p {pg_port} -U cockpit-city -d city-operations "
                  "(user = member, password = one of its tokens, database = purpose; TLS: "
                  "sslmode=require, needed off loopback)")
        try:
            await server.serve()
        finally:
            pg.close()

    # uvicorn.run picks uvloop (loop="auto"); a plain asyncio.run would not, and the
    # protocol then runs on the pure-Python selector loop (measured ~10% of a point lookup)
    with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
        runner.run(main())


# --- demo -------------------------------------------------------------------------------------

@app.command()
def demo(city_dir: Annotated[Path, typer.Option("--dir", help="where the demo city is written; "
                                                "an existing one there is reused")]
         = Path("demo-city"),
         port: Annotated[int, typer.Option(help="port to serve on")] = 8400,
         host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
         scale: Annotated[float, typer.Option(help="1 = one day of a mid-size city")] = 1.0,
         seed: Annotated[int, typer.Option(help="random seed (same seed, same city)")] = 42,
         engines: Annotated[str, typer.Option(help="`embedded` (files) or `real` (PostgreSQL "
                                              "and MariaDB)")] = "embedded",
         fresh: Annotated[bool, typer.Option(help="regenerate even if a demo city exists")]
         = False,
         no_serve: Annotated[bool, typer.Option("--no-serve", help="build only")] = False,
         live: Annotated[bool, typer.Option(help="also publish live passages and gate events "
                                            "on the MQTT broker at 127.0.0.1:1883 (e.g. "
                                            "Mosquitto) and serve their windows "
                                            "(traffic.segment_flow, traffic.congestion, "
                                            "parking_*.live_free…)")] = False,
         rate: Annotated[float, typer.Option(min=1, help="live passages per second")] = 200.0,
         witness: Annotated[bool, typer.Option(help="also run a witness hub that cosigns the "
                                               "ledger's checkpoints (its own process and "
                                               "folder, DIR/witness-hub, on port PORT+9)")]
         = True,
         unsafe_single_wall: UnsafeWallOpt = False,
         pg_port: Annotated[int | None, typer.Option(
             help="PostgreSQL wire endpoint port (default: 15432 when free; 0 = off)")]
         = None,
         watch: WatchOpt = True,
         federated: Annotated[bool, typer.Option(
             help="also serve district hubs for xihu and binjiang (each its own process and "
                  "folder, DIR/districts/NAME, on ports PORT+1 and PORT+2) under the city "
                  "hub, which reads their grid events through the protocol "
                  "(docs/federation.md)")] = False,
         store: Annotated[str | None, typer.Option(
             "--store", help="keep the hub's state and ledger in this PostgreSQL database "
                             "(postgresql://…): its schema is created, and [store] url "
                             "written into the demo's city.toml", show_default=False)]
         = None) -> None:
    """Build (or reuse) the demo city and serve it."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from zhongshu.demo.city import build_demo_city

    if engines not in ("embedded", "real"):
        raise typer.BadParameter("--engines must be `embedded` or `real`")
    if not no_serve:
        _port_in_use(host, port)
    _allow_single_wall(unsafe_single_wall)
    existing = (city_dir / "city.toml").is_file() and (city_dir / "demo.json").is_file()
    if not existing and city_dir.is_dir() and any(city_dir.iterdir()):
        raise ZhongshuError(f"{city_dir} is not empty and not a demo city (no demo.json): the "
                            "demo writes only into a folder it creates; give another --dir "
                            "(to serve your own city there: `zhongshu serve --dir "
                            f"{city_dir}`)")
    if existing and not fresh:
        meta = json.loads((city_dir / "demo.json").read_text())
        out.print(f"Reusing the demo city in {city_dir}/ (seed {meta['seed']}, scale "
                  f"{meta['scale']}, engines {meta['engines']}); `--fresh` rebuilds it.")
    else:
        t0 = time.monotonic()
        with Progress(TextColumn("{task.description:<24}"), BarColumn(),
                      TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                      console=err, transient=False) as bar:
            task = bar.add_task("generating", total=1.0)

            def progress(stage: str, frac: float) -> None:
                bar.update(task, description=stage, completed=min(frac, 0.999))

            build_demo_city(city_dir, seed=seed, scale=scale, engines=engines,
                            progress=progress)
            bar.update(task, description="done", completed=1.0)
        out.print(f"Built the demo city in {city_dir}/ in {time.monotonic() - t0:.1f} s.")
    if store:
        from zhongshu.cli_db import use_store

        use_store(city_dir, store)
    feed = None
    if live:
        from zhongshu.demo.live import Feed, declare

        if declare(city_dir):
            out.print("Declared the live streams in the traffic police's and the parking "
                      "companies' member files.")
        meta = json.loads((city_dir / "demo.json").read_text())
        feed = Feed(meta["seed"], meta["scale"], rate)
    districts: list[Any] = []
    if federated:
        from zhongshu.cli_federation import DistrictHub
        from zhongshu.demo import federation as demo_federation

        meta = json.loads((city_dir / "demo.json").read_text())
        folders = demo_federation.prepare(city_dir, port, meta["seed"], meta["scale"])
        for i, (name, folder) in enumerate(folders.items(), start=1):
            if not no_serve:
                _port_in_use(host, port + i)
                districts.append(DistrictHub(folder, port + i, unsafe_single_wall))
            out.print(f"District hub `hub-{name}`: http://127.0.0.1:{port + i} ({folder}/); "
                      f"the city reads {name}_grid.events and grid.events through it")
    witness_hub = None
    if witness and not no_serve:
        from zhongshu.cli_witness import WitnessHub, prepare, witness_port

        wport = witness_port(port)
        witness_hub = WitnessHub(prepare(city_dir, wport), wport)
        out.print(f"A witness hub cosigns the ledger's checkpoints: http://127.0.0.1:{wport} "
                  f"({city_dir}/{witness_hub.folder.name}/; stop it and /v1/health says "
                  "finality lost)")
    try:
        _demo_serve(city_dir, host, port, no_serve, feed, rate, pg_port, watch)
    finally:
        if witness_hub is not None:
            witness_hub.stop()
        for district in districts:
            district.stop()


def _demo_serve(city_dir: Path, host: str, port: int, no_serve: bool, feed: Any,
                rate: float, pg_port: int | None = None, watch: bool = True) -> None:
    from zhongshu.demo.tokens import ensure_tokens

    node = _node(city_dir, serve=not no_serve)
    where = ensure_tokens(node.catalog, city_dir)
    out.print(f"Member tokens are in {where}/ (one file per member, readable by you only).")
    out.print("Try:\n"
              f"  zhongshu query --dir {city_dir} --as cockpit-city --purpose city-operations "
              "\"SELECT c.district, count(*) AS passages FROM traffic.passages p JOIN "
              "traffic.checkpoints c USING (camera_id) GROUP BY 1 ORDER BY 2 DESC\"")
    _citizen(city_dir, node.city, host, port)
    if not no_serve:
        out.print(f"The cockpit: http://{host}:{port}/cockpit/ — sign in with the token in "
                  f"{where}/cockpit-city.token (the city) or {where}/cockpit-xihu.token (the "
                  "Xihu district: it sees only Xihu)")
    if not no_serve:
        from zhongshu.demo.story import Story

        local = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        def told(line: str) -> None:
            out.print(line, markup=False, highlight=False)
            out.file.flush()  # seen at once, also when the console is a file

        Story(f"http://{local}:{port}", city_dir, told).start()
    if feed is not None and not no_serve:
        feed.start()
        out.print(f"Publishing {rate:g} live passages/s on mqtt://127.0.0.1:1883 "
                  f"({feed_topic()}); watch them: SELECT * FROM traffic.district_flow")
    default_pg = pg_port is None
    if pg_port is None:
        pg_port = 15432 if _pg_free(host, 15432) else 0
    if pg_port and not no_serve:
        out.print(f"BI tools: PGPASSWORD=$(cat {where}/cockpit-city.token) psql -h {host} "
                  f"-p {pg_port} -U cockpit-city -d city-operations")
    try:
        if not no_serve:
            _serve(node, host, port, pg_port, pg_optional=default_pg, watch=watch)
    finally:
        if feed is not None and not no_serve:
            feed.stop()
        node.close()


# --- query ------------------------------------------------------------------------------------

@app.command()
def query(sql: Annotated[str, typer.Argument(help="one SELECT over dataset names")],
          purpose: Annotated[str, typer.Option(help="why the data is needed")],
          url: Annotated[str, typer.Option(envvar="ZHONGSHU_URL", help="the hub")] = DEFAULT_URL,
          token: Annotated[str | None, typer.Option(envvar="ZHONGSHU_TOKEN",
                                                       help="bearer token")] = None,
          as_member: Annotated[str | None, typer.Option(
              "--as", help="use MEMBER's token from the city folder (demo)")] = None,
          city_dir: DirOpt = Path("demo-city"),
          fmt: Annotated[str, typer.Option("--format", help="table, csv, json or arrow")]
          = "table",
          limit: Annotated[int | None, typer.Option(help="at most this many rows")] = None
          ) -> None:
    """Ask a hub a governed query and print the answer."""
    from zhongshu.client import Hub

    if fmt not in ("table", "csv", "json", "arrow"):
        raise typer.BadParameter("--format must be table, csv, json or arrow")
    if token is None and as_member:
        from zhongshu.demo.tokens import read_token

        token = read_token(city_dir, as_member)
    if not token:
        raise typer.BadParameter("give --token (or ZHONGSHU_TOKEN), or --as MEMBER with --dir")
    with Hub(url, token) as hub:
        try:
            table = hub.query(sql, purpose=purpose, limit=limit)
        except ZhongshuError:
            raise
        except Exception as e:
            raise ZhongshuError(f"cannot reach the hub at {url}: {e}") from None
    _print_table(table, fmt)


def _print_table(table: Any, fmt: str) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if fmt == "arrow":
        sink = sys.stdout.buffer
        with pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
        return
    if fmt == "csv":
        buf = pa.BufferOutputStream()
        pacsv.write_csv(table, buf)
        sys.stdout.write(buf.getvalue().to_pybytes().decode())
        return
    if fmt == "json":
        from zhongshu.protocol.encode import rows_json, table_rows

        cols = [f.name for f in table.schema]
        rows = json.loads(rows_json(table_rows(table)))
        sys.stdout.write(json.dumps([dict(zip(cols, r, strict=True)) for r in rows],
                                    ensure_ascii=False, indent=1) + "\n")
        return
    t = Table(show_lines=False)
    for f in table.schema:
        t.add_column(f.name, justify="right" if (
            pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
            or pa.types.is_decimal(f.type)) else "left")
    for row in zip(*[c.to_pylist() for c in table.columns], strict=True):
        t.add_row(*["" if v is None else str(v) for v in row])
    out.print(t)
    truncated = (table.schema.metadata or {}).get(b"truncated") == b"true"
    out.print(f"{table.num_rows} row(s)" + (" — truncated at the row cap" if truncated else ""))


# --- policy -----------------------------------------------------------------------------------

@policy_app.command("explain")
def policy_explain(sql: Annotated[str, typer.Argument(help="one SELECT over dataset names")],
                   as_member: Annotated[str, typer.Option("--as", help="the caller")],
                   purpose: Annotated[str, typer.Option(help="the purpose it states")],
                   city_dir: DirOpt = Path("."),
                   as_json: Annotated[bool, typer.Option("--json", help="machine-readable")]
                   = False) -> None:
    """Show what a query would read as MEMBER for PURPOSE, and which grant allows each column."""
    from zhongshu.policy.identity import Caller

    with _node(city_dir) as node:
        member = node.catalog.members.get(as_member)
        if member is None:
            raise ZhongshuError(f"no member `{as_member}` in this city")
        report = node.query.explain(Caller(member), sql, purpose)
    if as_json:
        print(json.dumps(report, ensure_ascii=False, indent=1, default=str))
        return
    out.print(f"[bold]{as_member}[/] for [bold]{purpose}[/] — path: {report['path']}")
    t = Table("dataset", "column", "allowed by", "mask")
    for d in report["datasets"]:
        for c in d["columns"]:
            t.add_row(d["dataset"], c["column"], c["grant"], c["mask"] or "")
    out.print(t)
    for d in report["datasets"]:
        if d["row_scope"]:
            out.print(f"row scope on {d['dataset']}: {d['row_scope']}")
    out.print("[bold]rewritten SQL[/] (each dataset replaced by its governed view):")
    out.print(report["governed_sql"], highlight=False, markup=False)


# --- grants -----------------------------------------------------------------------------------

@grants_app.command("list")
def grants_list(city_dir: DirOpt = Path("."),
                owner: Annotated[str | None, typer.Option(help="only this owner's")] = None
                ) -> None:
    """List every grant of the city: who may read what, for which purposes, how."""
    with _node(city_dir) as node:
        service = node.query
        t = Table("id", "owner", "consumer", "dataset", "purposes", "masks", "row scope",
                  "expires")
        for d in sorted(service.catalog.datasets.values(), key=lambda d: d.name):
            for m in sorted(service.catalog.members):
                for g in service.grants.of(m, d.name):
                    if owner and g.owner != owner:
                        continue
                    t.add_row(g.id, g.owner, g.consumer, g.dataset, ", ".join(g.purposes),
                              ", ".join(f"{c}:{k.kind}" for c, k in g.masking.items()),
                              g.row_scope or "", g.expires.isoformat() if g.expires else "")
        out.print(t)


@grants_app.command("add")
def grants_add(owner: Annotated[str, typer.Option(help="the member granting its datasets")],
               consumer: Annotated[str, typer.Option(help="the member receiving them")],
               dataset: Annotated[list[str], typer.Option(help="dataset (repeatable)")],
               purpose: Annotated[list[str], typer.Option(help="purpose (repeatable)")],
               city_dir: DirOpt = Path("."),
               columns: Annotated[str | None, typer.Option(
                   help="comma-separated columns (default: public and internal)")] = None,
               mask: Annotated[list[str] | None, typer.Option(
                   help="COLUMN=KIND (redact, partial, pseudonym, generalize)")] = None,
               row_scope: Annotated[str | None, typer.Option(help="SQL predicate")] = None,
               expires: Annotated[str | None, typer.Option(help="ISO 8601 time")] = None,
               rate_limit: Annotated[int | None, typer.Option(help="queries per minute")]
               = None) -> None:
    """Grant datasets of OWNER to CONSUMER; prints the grant id alone on the last line."""
    from zhongshu.policy.grants import Grants

    node = _node(city_dir)
    cat = node.catalog
    spec: dict[str, Any] = {"consumer": consumer, "datasets": dataset, "purposes": purpose}
    if columns:
        spec["columns"] = [c.strip() for c in columns.split(",") if c.strip()]
    if mask:
        spec["masking"] = dict(m.split("=", 1) for m in mask)
    if row_scope:
        spec["row_scope"] = row_scope
    if expires:
        spec["expires"] = expires
    if rate_limit:
        spec["rate_limit"] = rate_limit
    if owner not in cat.members:
        raise ZhongshuError(f"no member `{owner}` in this city")
    print(Grants(cat, node.stores.rates).add(owner, spec, actor=_actor()))


@grants_app.command("revoke")
def grants_revoke(grant_id: str, owner: Annotated[str, typer.Option(help="its owner")],
                  city_dir: DirOpt = Path(".")) -> None:
    """Revoke a grant made with `grants add` or the API; a serving hub applies it within 1 s."""
    from zhongshu.policy.grants import Grants

    node = _node(city_dir)
    cat = node.catalog
    Grants(cat, node.stores.rates).revoke(owner, grant_id, actor=_actor())
    out.print(f"revoked {grant_id}")


@app.command()
def changes(city_dir: DirOpt = Path("."),
            since: Annotated[int, typer.Option(help="after this sequence number")] = 0) -> None:
    """Every change to tokens, keys and grants, with who made it and when."""
    store = _node(city_dir).stores.metadata
    t = Table("#", "time", "who", "action", "subject", "details")
    for c in store.changes(since):
        t.add_row(str(c["seq"]), time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c["at"])),
                  c["actor"], c["action"], c["subject"], json.dumps(c["details"],
                                                                   ensure_ascii=False))
    out.print(t)


# --- catalog ----------------------------------------------------------------------------------

@catalog_app.command("list")
def catalog_list(city_dir: DirOpt = Path(".")) -> None:
    """List the datasets of a city with their status."""
    node = _node(city_dir)
    cat = node.catalog
    t = Table("dataset", "owner", "source", "listed", "columns", "last check")
    for d in sorted(cat.datasets.values(), key=lambda d: d.name):
        st = cat.store.dataset_status(d.name)
        t.add_row(d.name, d.owner, d.source.name, "yes" if d.listed else "no",
                  str(len(d.columns)), st[0] if st else "never")
    out.print(t)


@catalog_app.command("show")
def catalog_show(name: str, city_dir: DirOpt = Path(".")) -> None:
    """Show one dataset's definition."""
    from zhongshu.config import load_city

    city = load_city(city_dir)
    found = city.datasets().get(name)
    if not found:
        raise ZhongshuError(f"no dataset `{name}` in {city_dir}; `zhongshu catalog list` "
                            "shows them")
    owner, ds = found
    out.print(f"[bold]{ds.name}[/] — {ds.title}  (owner {owner}, source {ds.source}, "
              f"{'listed' if ds.listed else 'unlisted'})")
    if ds.description:
        out.print(ds.description)
    t = Table("column", "type", "classification", "description", "expression")
    for c in ds.columns:
        t.add_row(c.name, c.type, c.classification, c.description, c.expr or "")
    out.print(t)


@catalog_app.command("confirm")
def catalog_confirm(
        datasets: Annotated[list[str] | None, typer.Argument(
            help="the datasets to list (default with --member: every unlisted one of it)")]
        = None,
        member: Annotated[str | None, typer.Option(
            help="confirm every unlisted dataset of this member")] = None,
        city_dir: DirOpt = Path(".")) -> None:
    """List datasets once their owner has checked them (those `zhongshu connect` proposed):
    each one's `listed = false` becomes `listed = true` in its member file, comments kept.
    A serving hub applies it within seconds; consumers still need a grant."""
    from zhongshu.catalog.confirm import confirm
    from zhongshu.config import load_city
    from zhongshu.config._toml import replace_file

    city = load_city(city_dir)
    declared = city.datasets()
    if member is not None and member not in city.members:
        raise ConfigError(f"no member `{member}` in {city_dir}; `zhongshu members list` "
                          "shows them")
    names = list(datasets or [])
    if not names:
        if member is None:
            raise typer.BadParameter("name the datasets to confirm, or give --member")
        names = sorted(n for n, (owner, ds) in declared.items()
                       if owner == member and not ds.listed)
        if not names:
            out.print(f"Every dataset of {member} is listed already.")
            return
    for name in names:
        if name not in declared:
            raise ConfigError(f"no dataset `{name}` in {city_dir}; `zhongshu catalog list` "
                              "shows them")
        if member is not None and declared[name][0] != member:
            raise ConfigError(f"dataset `{name}` belongs to `{declared[name][0]}`, not "
                              f"`{member}`")
    before: dict[Path, str] = {}
    now: dict[Path, str] = {}
    listed = []
    for name in names:
        owner, ds = declared[name]
        path = city.member_files[owner]
        if path not in now:
            before[path] = now[path] = path.read_text(encoding="utf-8")
        now[path], did = confirm(now[path], name, str(path))
        if did:
            replace_file(path, now[path])
            listed.append((name, path, ds))
        else:
            out.print(f"{name} is listed already ({path})", highlight=False)
    try:
        load_city(city_dir)
    except ConfigError:
        for path, text in before.items():  # never leave a member file that does not load
            replace_file(path, text)
        raise
    for name, path, ds in listed:
        out.print(f"Listed [bold]{name}[/] ({path})", highlight=False)
        if ds.description.startswith("TODO") or not ds.description:
            err.print(f"[yellow]note:[/] {name} has no description yet: its consumers read "
                      "it in the catalog", highlight=False)
    if listed:
        out.print("It is in the catalog now (a serving hub applies it within seconds); a "
                  "consumer reads it once granted (`[[grants]]` in the member file, or "
                  "`zhongshu grants add`).")


@catalog_app.command("check")
def catalog_check(city_dir: DirOpt = Path(".")) -> None:
    """Validate the configuration — owners' SQL (row scopes, dataset definitions, panels)
    checked like queries as their authors — and compare every dataset with its source
    (schema drift)."""
    from rich.markup import escape

    from zhongshu.cockpit.panels import load_panels
    from zhongshu.policy.grants import Grants
    from zhongshu.policy.owners import panel_checker

    node = _node(city_dir)
    cat = node.catalog
    problems: list[ConfigError] = []
    Grants(cat, node.stores.rates, problems=problems)
    try:
        load_panels(cat.city.root, check=panel_checker(cat),
                    datasets={name: ds for name, (_, ds) in cat.city.datasets().items()})
    except ConfigError as e:
        problems.append(e)
    for problem in problems:  # one line each, naming the file and line
        out.print(f"[red]refused[/]     {escape(str(problem))}", soft_wrap=True)
    cat.check()
    bad = len(problems)
    # a dataset whose definition was refused above fails against its source for that reason
    refused = {p.dataset for p in problems if p.dataset is not None}
    for d in sorted(cat.datasets.values(), key=lambda d: d.name):
        if d.status == "ok":
            out.print(f"[green]ok[/]          {d.name}")
        elif d.name in refused:
            out.print(f"[red]refused[/]     {d.name} (its definition, above)")
        else:
            bad += 1
            out.print(f"[red]{d.status:<11}[/] {d.name}: {escape(d.reason)}", soft_wrap=True)
    if bad:
        raise typer.Exit(1)


# --- members ----------------------------------------------------------------------------------

@members_app.command("add")
def members_add(name: str,
                kind: Annotated[str, typer.Option(help="department, enterprise, district, "
                                                       "scenario, hub, cockpit, auditor…")],
                city_dir: DirOpt = Path("."),
                title: Annotated[str, typer.Option(help="display name")] = "",
                role: Annotated[list[str] | None, typer.Option(help="e.g. auditor")] = None
                ) -> None:
    """Add a member (writes members/NAME.toml; a serving hub applies it within seconds)."""
    import tomli_w

    from zhongshu.config import MemberFile, load_city

    city = load_city(city_dir)
    path = city.root / "members" / f"{name}.toml"
    if name in city.members or path.exists():
        raise ZhongshuError(f"member `{name}` already exists ({path})")
    doc = {"member": {"name": name, "kind": kind, "title": title, "roles": role or []}}
    try:
        MemberFile.model_validate(doc)
    except Exception as e:
        raise ZhongshuError(f"invalid member: {str(e).splitlines()[-1].strip()}") from None
    path.write_text(f"# Member `{name}`, added by `zhongshu members add`.\n\n"
                    + tomli_w.dumps(doc), encoding="utf-8")
    load_city(city_dir)  # the city still loads
    store = _node(city_dir).stores.metadata
    store.upsert_member(name, kind, title, list(role or []))
    store.record_change(_actor(), "member.add", name, {"kind": kind, "roles": role or []})
    out.print(f"added member {name} ({kind}) in {path}")


@members_app.command("list")
def members_list(city_dir: DirOpt = Path(".")) -> None:
    """List members with their kind, roles and number of valid tokens."""
    node = _node(city_dir)
    cat = node.catalog
    t = Table("member", "kind", "title", "roles", "valid tokens")
    for m in cat.store.members():
        if m["name"] in cat.members:
            t.add_row(m["name"], m["kind"], m["title"], ", ".join(json.loads(m["roles"])),
                      str(m["tokens"]))
    out.print(t)


@members_app.command("revoke")
def members_revoke(name: str, city_dir: DirOpt = Path("."),
                   token_id: Annotated[str | None, typer.Option(
                       "--id", help="only the token whose id (hash prefix) is this")] = None
                   ) -> None:
    """Revoke a member's tokens (all of them, or one by id); every hub serving this city's
    store (each replica) refuses them, and ends the sessions made from them, within a
    second."""
    node = _node(city_dir)
    cat = node.catalog
    if name not in cat.members:
        raise ZhongshuError(f"no member `{name}` in this city")
    from zhongshu.policy.identity import revoke_tokens

    n = revoke_tokens(cat, name, token_id, actor=_actor())
    out.print(f"revoked {n} token(s) of {name}")


@members_app.command("key")
def members_key(name: str, city_dir: DirOpt = Path("."),
                public_key: Annotated[str | None, typer.Option(
                    help="register this Ed25519 public key (base64 of its 32 bytes)")] = None,
                out_file: Annotated[Path | None, typer.Option(
                    "--out", help="write the new private key (PEM) here, mode 0600")] = None
                ) -> None:
    """Register an Ed25519 key for member NAME (a new pair, or a given public key); prints the
    key id alone on the last line."""
    import base64

    from zhongshu.policy.identity import register_key

    node = _node(city_dir)
    cat = node.catalog
    raw = base64.b64decode(public_key) if public_key else None
    key_id, pem = register_key(cat, name, raw, actor=_actor())
    if pem is not None:
        if out_file is None:
            raise typer.BadParameter("give --out FILE for the new private key")
        fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        err.print(f"private key written to {out_file} (keep it with the member, not the hub)")
    print(key_id)


def _citizen(city_dir: Path, city: Any, host: str, port: int) -> None:
    """Print an ID token of the demo's identity provider for a demo resident (valid an
    hour) and how to use it."""
    from zhongshu.demo import idp

    who = idp.resident(city_dir)
    if city.people is None or not who or not idp.key_path(city_dir).exists():
        return
    token = idp.mint(city_dir, city.people, who["id_number"])
    plate = who["plates"][0] if who.get("plates") else "浙A12345"
    out.print(f"A citizen signed in with the demo's identity provider (a resident owning "
              f"{', '.join(who.get('plates', []))}), ID token valid an hour:")
    out.print(token, soft_wrap=True, highlight=False)  # one line, to copy whole
    out.print(f"  curl -H 'Authorization: Bearer <token>' "
              f"'http://{host}:{port}/scenarios/parking/sessions?plate={plate}'\n"
              f"  curl -H 'Authorization: Bearer <token>' http://{host}:{port}/v1/me/usage")


@members_app.command("token")
def members_token(name: str, city_dir: DirOpt = Path("."),
                  label: Annotated[str, typer.Option(help="what the token is for")] = "",
                  days: Annotated[float | None, typer.Option(help="expires after DAYS")]
                  = None) -> None:
    """Issue one more token for member NAME; prints it alone on the last line."""
    from zhongshu.policy.identity import issue_token

    node = _node(city_dir)
    cat = node.catalog
    expires = time.time() + days * 86400 if days else None
    token = issue_token(cat, name, label=label, expires_at=expires, actor=_actor())
    err.print(f"New token for {name} (shown once; the hub keeps only its hash):")
    print(token)


def _actor() -> str:
    """Who is changing governance from the command line: the operating-system user."""
    import getpass

    return f"cli:{getpass.getuser()}"


EXIT_STORE_OUTDATED = 78


def main() -> None:
    """Entry point: run the CLI, turning errors into one line (exit status 1; 78 when the
    hub's store is older than its code)."""
    try:
        rc = app(standalone_mode=False)
        sys.exit(rc if isinstance(rc, int) else 0)
    except (ZhongshuError, ConfigError) as e:
        if _state["debug"]:
            raise
        from rich.markup import escape

        err.print(f"[red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        from zhongshu.errors import StoreOutdated

        # a store older than the code stays so until an operator upgrades it: a status of
        # its own (EX_CONFIG), which a supervisor need not retry (deploy/systemd)
        sys.exit(EXIT_STORE_OUTDATED if isinstance(e, StoreOutdated) else 1)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as e:
        from rich.markup import escape

        from zhongshu.extras import hint

        # click's usage errors (typer vendors click from 0.2x on, so `import click` may
        # fail or name another copy): they show themselves, with their exit status (2 for
        # bad usage)
        show, code = getattr(e, "show", None), getattr(e, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            sys.exit(code)
        if _state["debug"] or os.environ.get("ZHONGSHU_DEBUG"):
            raise
        # a command whose extra is not installed says which (pip install 'zhongshu[hub]')
        line = hint(e) if isinstance(e, ModuleNotFoundError) else None
        err.print("[red]error:[/] " + escape(line or f"{type(e).__name__}: {e}")
                  + ("" if line else " (run with --debug for details)"),
                  highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
