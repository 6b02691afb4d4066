"""Scenarios (场景): services that need several departments' data at once, built only on the
hub protocol.

A scenario registers through the ``zhongshu.scenarios`` entry point group (an object with
``name``, ``member``, ``purpose`` and ``router(hub) -> APIRouter``), talks to the hub only
through :class:`zhongshu.client.Hub` under its own member's token — so it could equally run
on another machine — and answers under ``/scenarios/<name>/``. A scenario that publishes
derived datasets keeps them in its own store (``data/<member>/`` of the city), which its
member declares as a source like any department's; its ``store(home)`` creates that store
empty, so a new city (``zhongshu demo``) can declare it before the scenario first writes.
The hub mounts the scenarios whose member has a token (``ZHONGSHU_TOKEN_<MEMBER>`` in the
environment, or the city's token folder, which ``zhongshu demo`` fills).

Every route of a scenario is behind the hub's scenario door (a ``guard`` the hub hands to
:func:`mount`, ``zhongshu.protocol.callers``): its caller authenticates as on the protocol and
must be declared for the service in the scenario member's file (``[[callers]]``). The
scenario then acts *on behalf of* that caller: its client names the caller in every request
it makes to the hub while answering (``Zhongshu-On-Behalf-Of``), so the hub's ledger entries
name both. A scenario's own code needs nothing for this; it cannot forget it.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute

from zhongshu.client import Hub
from zhongshu.errors import ZhongshuError

log = logging.getLogger("zhongshu.scenarios")
ENTRY_POINTS = "zhongshu.scenarios"
# the caller the scenario answers now (set by the door for each request, read by its client)
CALLER: ContextVar[str | None] = ContextVar("zhongshu_scenario_caller", default=None)
Guard = Callable[[str, str, Iterable[str]], Callable[..., Awaitable[str]]]


@dataclass(frozen=True)
class Scenario:
    """One scenario: its URL name, the member it acts as, the purpose it asks for, and its
    API given a client of the hub."""

    name: str
    member: str
    purpose: str
    router: Callable[[Hub, str, Path], APIRouter]  # (hub client, purpose, home) → routes
    # creates the scenario's own store, empty, in a home folder (for a city whose member
    # declares it as a source before the scenario has written anything)
    store: Callable[[Path], Path] | None = None


def own_store(home: Path, file: str, ddl: str) -> Path:
    """A scenario's own SQLite store (``home/file``), its table created (``ddl``) if
    missing, readable by the hub's unprivileged DuckDB workers, which serve it as the
    source its member declares."""
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o755)
    path = home / file
    with sqlite3.connect(path) as c:
        c.execute(ddl)
    path.chmod(0o644)
    return path


def discover() -> list[Scenario]:
    """The installed scenarios, by name."""
    found = [ep.load() for ep in metadata.entry_points(group=ENTRY_POINTS)]
    return sorted(found, key=lambda s: s.name)


def token_for(city_root: Path, member: str) -> str | None:
    """A scenario member's token: ``ZHONGSHU_TOKEN_<MEMBER>``, else the city's token folder."""
    env = os.environ.get("ZHONGSHU_TOKEN_" + re.sub(r"[^A-Za-z0-9]", "_", member).upper())
    if env:
        return env
    path = city_root / "state" / "tokens" / f"{member}.token"
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


def services(router: APIRouter) -> set[str]:
    """The services of a scenario's router: the first segment of each route's path.

    Raises:
        ZhongshuError: the router holds something other than API routes (a mounted app,
            static files, an included router): dependencies do not reach a mounted app,
            and a nested route's path would not name its service, so neither is served.
    """
    odd = [r for r in router.routes if not isinstance(r, APIRoute)]
    if odd:
        raise ZhongshuError(f"a scenario's router holds API routes only, not {odd[0]!r}: "
                            "the scenario door could not guard it")
    return {r.path.lstrip("/").split("/", 1)[0] for r in router.routes
            if isinstance(r, APIRoute)}


def mount(app: FastAPI, hub_url: str, city_root: Path, guard: Guard) -> list[str]:
    """Mount every installed scenario whose member has a token; the names mounted. A
    scenario whose member the city does not declare (no ``members/<member>.toml``) is not
    this city's: it is skipped without a word.

    Args:
        guard: ``guard(name, member, services)`` → the dependency that admits a caller to a
            route of scenario ``name`` and returns the caller's name (the hub's scenario
            door); it is put on every route of the scenario.

    Raises:
        ConfigError: a scenario member declares callers for a service it does not offer.
    """
    mounted = []
    for sc in discover():
        if not (city_root / "members" / f"{sc.member}.toml").is_file():
            continue
        token = token_for(city_root, sc.member)
        if token is None:
            log.warning("scenario %s not started: no token for member %s (set "
                        "ZHONGSHU_TOKEN_%s)", sc.name, sc.member,
                        re.sub(r"[^A-Za-z0-9]", "_", sc.member).upper())
            continue
        home = city_root / "data" / sc.member  # the scenario's own store, if it keeps one
        router = sc.router(Hub(hub_url, token, on_behalf=CALLER.get), sc.purpose, home)
        app.include_router(router, prefix=f"/scenarios/{sc.name}",
                           tags=[f"scenario: {sc.name}"],
                           dependencies=[Depends(_acting(guard(sc.name, sc.member,
                                                               services(router))))])
        mounted.append(sc.name)
    return mounted


def _acting(door: Callable[..., Awaitable[str]]) -> Callable[..., Awaitable[None]]:
    """The dependency that admits the caller through ``door`` and makes the scenario's client
    act on its behalf for the rest of the request."""
    async def acting(caller: str = Depends(door)) -> None:
        # async, so the value is set in the request's own context, which the thread running
        # a sync route copies
        CALLER.set(caller)
    return acting
