"""``zhongshu connect`` (propose datasets over a department's system) and ``zhongshu sources
list`` (what each member has connected, and whether it answers)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

sources_app = typer.Typer(help="The departments' systems a city has connected.",
                          no_args_is_help=True)
out = Console(width=None if sys.stdout.isatty() else 240)

DirOpt = Annotated[Path, typer.Option("--dir", help="the city folder")]


def connect(
        member: Annotated[str, typer.Option(help="the member whose system it is (its file "
                                                 "members/MEMBER.toml is created or extended)")],
        url: Annotated[str, typer.Option(help="postgresql://USER[:PASSWORD]@HOST:PORT/DB, "
                                              "mysql://…, sqlite:///FILE or file:///FOLDER")],
        city_dir: DirOpt = Path("."),
        kind: Annotated[str, typer.Option(help="the member's kind, if its file is new")]
        = "department",
        title: Annotated[str, typer.Option(help="the member's title, if its file is new")] = "",
        namespace: Annotated[str | None, typer.Option(
            help="the datasets' namespace (default: the member's name, - as _)")] = None
        ) -> None:
    """Propose a dataset per table of a department's system, in the member's file.

    The system is read, never written: its tables, their types, at most 200 rows each. Each
    column gets a classification proposal with the evidence beside it; nothing is listed or
    granted until the owner confirms. A password in the URL goes to secrets.toml.
    """
    from zhongshu.catalog.connect import connect as run

    done = run(city_dir, member, url, kind=kind, title=title, namespace=namespace)
    rel = done.member_file
    out.print(f"Connected {escape(done.shown)} for [bold]{escape(member)}[/] "
              f"({', '.join(done.sources)}).", highlight=False)
    if done.secret:
        out.print(f"The password is in secrets.toml as `{escape(done.secret)}` "
                  "(password_secret); it is written nowhere else.", highlight=False)
    found = len(done.proposals) + len(done.already) + len(done.unreadable)
    out.print(f"Tables found: {found}; datasets proposed: {len(done.proposals)}"
              + (f"; already declared: {len(done.already)}" if done.already else ""))
    for table, dataset in done.already:
        out.print(f"  {escape(table)}: already {escape(dataset)} (left as written)",
                  highlight=False)
    for table, why in done.unreadable:
        out.print(f"  [yellow]{escape(table)}: not read[/] ({escape(why)})", highlight=False)
    if done.proposals:
        t = Table("dataset", "columns", "area column", "flagged")
        for p in done.proposals:
            flagged = [c for c in p.columns if c.flagged]
            t.add_row(escape(p.dataset), str(len(p.columns)), escape(p.area_column or "—"),
                      str(len(flagged)))
        out.print(t)
        flags = [(p.dataset, c) for p in done.proposals for c in p.columns if c.flagged]
        if flags:
            f = Table("dataset", "column", "proposed", "why")
            for dataset, c in flags:
                f.add_row(escape(dataset), escape(c.name), c.classification, escape(c.evidence))
            out.print(f)
    if not done.proposals and not done.new_sources:
        out.print(f"Nothing new to propose; {escape(str(rel))} is unchanged.", highlight=False)
        return
    verb = "Wrote" if done.created else "Extended"
    out.print(f"{verb} {escape(str(rel))}. Next: check each column's classification (the "
              "evidence is beside it), write the descriptions, set `listed = true`, add "
              f"{escape('[[grants]]')}, then `zhongshu catalog check --dir "
              f"{escape(str(city_dir))}`.",
              highlight=False)


@sources_app.command("list")
def sources_list(city_dir: DirOpt = Path(".")) -> None:
    """Each member's sources and streams: kind, where (never a password), health."""
    from zhongshu.config import load_city
    from zhongshu.sources import open_source, open_stream

    city = load_city(city_dir)
    t = Table("member", "source", "kind", "where", "datasets", "health")
    for name in sorted(city.members):
        mf = city.members[name]
        for s in mf.sources:
            src = open_source(s, city.root, name)
            try:
                health = src.health()
            finally:
                src.close()
            n = sum(1 for d in mf.datasets if d.source == s.name)
            t.add_row(name, s.name, s.kind, escape(_where(s.path, s.host, s.port, s.database,
                                                          s.user)), str(n), _health(health))
        for st in mf.streams:
            stream = open_stream(st, mf, city.root)
            try:
                health = stream.health()
            finally:
                stream.close()
            t.add_row(name, st.name, st.kind, escape(f"{st.host}:{stream.port} {st.topic}"),
                      str(len(stream.datasets())), _health(health))
    out.print(t)


def _where(path: str | None, host: str, port: int | None, database: str | None,
           user: str | None) -> str:
    if path:
        return path
    who = f"{user}@" if user else ""
    return f"{who}{host}{f':{port}' if port else ''}/{database or ''}"


def _health(health: str) -> str:
    return "[green]ok[/]" if health == "ok" else f"[red]{escape(health)}[/]"
