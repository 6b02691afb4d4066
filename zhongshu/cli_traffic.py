"""``zhongshu traffic evaluate``: a signal controller on a SUMO network and its demand, over
several seeds."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from zhongshu.errors import BadRequest

traffic_app = typer.Typer(help="Traffic signals, evaluated in SUMO.", no_args_is_help=True)
out = Console(width=None if sys.stdout.isatty() else 240)
err = Console(stderr=True)


@traffic_app.command("evaluate", context_settings={"allow_extra_args": True})
def evaluate(
        ctx: typer.Context,
        net: Annotated[Path, typer.Option(help="SUMO network (.net.xml) with its own programs")],
        routes: Annotated[str, typer.Option(
            help="SUMO demand (.rou.xml; several separated by commas)")],
        controller: Annotated[str, typer.Option(
            help="fixed, webster, max-pressure, ours or ours-wave")] = "fixed",
        seeds: Annotated[list[int] | None, typer.Option(
            help="SUMO seeds: --seeds 1 2 3 (or the option repeated)")] = None,
        begin: Annotated[float, typer.Option(help="first second simulated")] = 0,
        end: Annotated[float, typer.Option(help="last second simulated")] = 3600,
        step: Annotated[float, typer.Option(help="seconds between decisions")] = 10,
        yellow: Annotated[float, typer.Option(help="seconds of yellow between greens")] = 3,
        additional: Annotated[list[Path] | None, typer.Option(
            help="SUMO additional file, e.g. traffic-light programs (repeatable)")] = None,
        jobs: Annotated[int, typer.Option(help="seeds simulated at once (processes)")] = 1,
        fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table") -> None:
    """Run the controller on the network once per seed; metrics per seed, mean and sd."""
    from zhongshu.traffic.signals.controllers import CONTROLLERS

    extra = list(ctx.args)  # `--seeds 1 2 3`: the seeds after the first come as arguments
    if extra and (seeds is None or not all(a.lstrip("-").isdigit() for a in extra)):
        raise BadRequest(f"unexpected argument(s): {' '.join(extra)}")
    seeds = [*(seeds or [1]), *(int(a) for a in extra)]
    if controller not in CONTROLLERS:
        raise BadRequest(f"no controller `{controller}`; there are {', '.join(CONTROLLERS)}")
    if end <= begin:
        raise BadRequest(f"--end ({end:g}) must come after --begin ({begin:g})")
    if step <= 0 or yellow < 0 or yellow >= step:
        raise BadRequest("--step must be positive and --yellow shorter than --step")
    if jobs < 1:
        raise BadRequest("--jobs is at least 1")
    demand = [Path(r) for r in routes.split(",") if r]
    for path in (net, *demand, *(additional or [])):
        if not path.is_file():
            raise BadRequest(f"no file {path}")
    if fmt not in ("table", "json"):
        raise BadRequest("--format is table or json")
    task = (net, ",".join(str(d) for d in demand), controller, begin, end, step, yellow,
            tuple(additional or ()))
    runs: list[dict[str, Any]] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as progress:
        bar = progress.add_task(f"{controller} on {net.name}, {len(seeds)} seed(s)",
                                total=len(seeds))
        if jobs == 1 or len(seeds) == 1:
            for seed in seeds:
                runs.append(_one_seed((seed, *task)))
                progress.advance(bar)
        else:
            from multiprocessing import get_context

            # libsumo holds one simulation per process: a fresh process per seed
            with get_context("spawn").Pool(min(jobs, len(seeds)), maxtasksperchild=1) as pool:
                for r in pool.imap(_one_seed, [(seed, *task) for seed in seeds]):
                    runs.append(r)
                    progress.advance(bar)
    keys = [k for k in runs[0] if k != "seed"]
    mean = {k: statistics.fmean(r[k] for r in runs) for k in keys}
    sd = {k: statistics.stdev(r[k] for r in runs) if len(runs) > 1 else 0.0 for k in keys}
    if fmt == "json":  # plain, unwrapped: scripts parse it
        sys.stdout.write(json.dumps({"controller": controller, "net": str(net), "seeds": runs,
                                     "mean": mean, "sd": sd}, indent=2) + "\n")
        return
    table = Table(title=f"{controller} on {net.name}")
    table.add_column("seed")
    for k in keys:
        table.add_column(k, justify="right")
    for r in runs:
        table.add_row(str(r["seed"]), *(f"{r[k]:.2f}" for k in keys))
    table.add_row("mean ± sd", *(f"{mean[k]:.2f} ± {sd[k]:.2f}" for k in keys))
    out.print(table)


def _one_seed(task: tuple[Any, ...]) -> dict[str, Any]:
    """One seed's run (in this process or a pool's)."""
    from zhongshu.traffic.signals.controllers import CONTROLLERS
    from zhongshu.traffic.signals.sim import run

    seed, net, routes, controller, begin, end, step, yellow, additional = task
    m = run(net, routes, CONTROLLERS[controller](), seed, begin, end, step, yellow,
            additional=additional)
    return {"seed": seed, **m}
