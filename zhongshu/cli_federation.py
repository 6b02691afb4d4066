"""``zhongshu federation …``: this hub's place in a federation.

``key`` prints this hub's federation member name and public key (made on first use), the
line its peers put in their ``[[federation.peers]]``; ``peers`` fetches each peer's catalog
once and says what it offers, or why not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from zhongshu.config import load_city
from zhongshu.errors import ConfigError

federation_app = typer.Typer(help="This hub's peers (district hubs, the city hub).",
                             no_args_is_help=True)
out = Console()
DirOpt = Annotated[Path, typer.Option("--dir", help="the city folder")]


@federation_app.command("key")
def key(city_dir: DirOpt = Path(".")) -> None:
    """Print this hub's federation member name and public key (created on first use): give
    them to its peers, for their ``[[federation.peers]]`` ``name`` and ``public_key``."""
    from zhongshu.federation import load_key, public_key_b64

    city = load_city(city_dir)
    if city.federation is None:
        raise ConfigError("no [federation] in city.toml (docs/federation.md)",
                          path=str(city.root / "city.toml"))
    k = load_key(city.root / city.federation.key)
    out.print(f"member      {city.federation.member}\npublic_key  {public_key_b64(k)}",
              highlight=False, soft_wrap=True)


@federation_app.command("peers")
def peers(city_dir: DirOpt = Path(".")) -> None:
    """Fetch each peer's catalog once: the datasets it offers this hub, or why not."""
    from zhongshu.node import Node

    with Node.open(city_dir) as node:
        fed = node.federation
        if fed is None:
            raise ConfigError("no [federation] in city.toml (docs/federation.md)",
                              path=str(node.city.root / "city.toml"))
        fed[1].refresh()
        for name, st in fed[1].state.items():
            offered = ", ".join(d.config.name for d in st.offer.datasets) if st.offer else ""
            state = fed[1].report()[name]
            out.print(f"{name}  {state}  {offered or '-'}"
                      + (f"  ({st.error})" if st.error else ""), highlight=False,
                      soft_wrap=True)


class DistrictHub:
    """A district hub's process for ``zhongshu demo --federated`` (``zhongshu serve`` on its
    folder), its output in ``<folder>/serve.log``; it ends with the demo."""

    def __init__(self, folder: Path, port: int, unsafe_single_wall: bool = False) -> None:
        import os
        import subprocess
        import sys

        from zhongshu.cli_witness import _die_with_parent

        self.folder, self.port = folder, port
        self.log = open(folder / "serve.log", "ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZHONGSHU_")}
        args = [sys.executable, "-m", "zhongshu.cli", "serve", "--dir", str(folder), "--port",
                str(port), *(["--unsafe-single-wall"] if unsafe_single_wall else [])]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log, env=env,
                                     start_new_session=True, preexec_fn=_die_with_parent)

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after 10 s)."""
        from zhongshu.cli_witness import stop_child

        stop_child(self.proc)
        self.log.close()
