"""``zhongshu db``: the schema of the hub's PostgreSQL store — where it stands, and upgrading it.

The store is the one the city's hub uses (``[store] url`` in ``city.toml``, or
``ZHONGSHU_STORE_URL``), or the one given with ``--store``. A hub never migrates its store
itself: it refuses to start on an older schema and names ``zhongshu db upgrade``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from zhongshu.errors import ZhongshuError

db_app = typer.Typer(help="The hub's PostgreSQL store: schema status and upgrade.",
                     no_args_is_help=True)
out = Console(width=None if sys.stdout.isatty() else 240)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 240)

DirOpt = Annotated[Path, typer.Option("--dir", help="the city folder (its [store] url)")]
StoreOpt = Annotated[str | None, typer.Option(
    "--store", help="the store's URL, postgresql://… (default: the city's [store] url or "
                    "ZHONGSHU_STORE_URL)", show_default=False)]


def _database(city_dir: Path, store: str | None) -> Any:
    """The store's database (``zhongshu.stores.postgres.Database``), its schema unchecked.

    Raises:
        ZhongshuError: no PostgreSQL store is configured (the embedded one needs no upgrade).
        StoreUnavailable: it cannot be reached.
    """
    from zhongshu.node import store_url
    from zhongshu.stores.postgres import Database

    if store is None:
        from zhongshu.config import load_city

        store = store_url(load_city(city_dir))
    if not store:
        raise ZhongshuError(f"{city_dir} keeps its state in SQLite files (no [store] url, no "
                            "ZHONGSHU_STORE_URL): they need no upgrade; give --store URL for a "
                            "PostgreSQL store")
    if not store.startswith(("postgresql://", "postgres://")) and "=" not in store:
        raise ZhongshuError("a store URL starts with postgresql://")
    return Database(store, max_size=2)


@db_app.command("status")
def status(city_dir: DirOpt = Path("."), store: StoreOpt = None) -> None:
    """Show the schema version of the store, and the migrations not applied yet."""
    from zhongshu.stores import schema

    db = _database(city_dir, store)
    try:
        st = schema.status(db)
    finally:
        db.close()
    out.print(f"Store {db.label}: schema version {st.current}; this hub needs {st.latest}.",
              highlight=False)
    if st.pending:
        t = Table("version", "migration")
        for m in st.pending:
            t.add_row(f"{m.version:04d}", m.name)
        out.print(t)
        out.print("Run `zhongshu db upgrade` to apply them.")
    else:
        out.print("Up to date.")


@db_app.command("upgrade")
def upgrade(city_dir: DirOpt = Path("."), store: StoreOpt = None) -> None:
    """Apply the migrations the store lacks, in order (each in one transaction)."""
    from zhongshu.stores import schema

    db = _database(city_dir, store)
    try:
        applied = schema.upgrade(db)
        st = schema.status(db)
    finally:
        db.close()
    for m in applied:
        out.print(f"Applied {m.version:04d} {m.name}", highlight=False)
    out.print(f"Store {db.label}: schema version {st.current}"
              + (" (it was up to date)." if not applied else "."), highlight=False)


def without_password(url: str) -> tuple[str, str | None]:
    """``url`` without its password (in the user part or the query), and the password.

    >>> without_password("postgresql://hub:pw@db:5433/city?sslmode=require")
    ('postgresql://hub@db:5433/city?sslmode=require', 'pw')
    >>> without_password("postgresql://db/city?password=pw&application_name=hub")
    ('postgresql://db/city?application_name=hub', 'pw')
    >>> without_password("postgresql://hub@db/city")
    ('postgresql://hub@db/city', None)
    """
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    password = parts.password
    netloc = parts.netloc
    if password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}@{host}"
    query = parse_qsl(parts.query, keep_blank_values=True)
    password = next((v for k, v in query if k == "password"), password)
    query = [(k, v) for k, v in query if k != "password"]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query),
                       parts.fragment)), password


def windows_role(db: Any, city_dir: Path) -> str:
    """Make the role the query workers read the stream windows as (``[store]
    windows_user``), its password a new secret ``windows``; its name, or "" when the store's
    user may not make roles (then say what to ask the database's administrator for)."""
    import re
    import secrets as random

    import psycopg
    from psycopg import sql

    from zhongshu.config.secrets import stored_secret, write_secret

    with db.connection() as con:
        name = re.sub(r"[^a-z0-9_]", "_", f"{con.info.user}_windows".lower()).lstrip("0123456789")
        name = name[:63]
        held = stored_secret(city_dir, "windows")
        password = held or random.token_urlsafe(24)
        hashed = con.pgconn.encrypt_password(password.encode(), name.encode(),
                                             b"scram-sha-256").decode()
        exists = con.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
        if exists and held is None:  # not made by this city's demo: left as it is
            out.print(f"A role {name} exists already: set [store] windows_user and "
                      "windows_password_secret in city.toml to it (or to another role that "
                      "may read the stream windows only).", highlight=False, markup=False)
            return ""
        verb = "ALTER" if exists else "CREATE"
        try:  # the password's hash only: the server's log never holds the password
            con.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(hashed)))
        except psycopg.errors.InsufficientPrivilege:
            out.print(f"The store's user may not make roles: ask the database's administrator "
                      f"for one the query workers read the stream windows as (CREATE ROLE "
                      f"{name} LOGIN PASSWORD '…'), then set [store] windows_user and "
                      "windows_password_secret in city.toml.", highlight=False, markup=False)
            return ""
    if stored_secret(city_dir, "windows") is None:
        write_secret(city_dir, "windows", password)
    out.print(f"Made role {name} for the query workers to read the stream windows as (its "
              "password: secret `windows`).", highlight=False, markup=False)
    return name


def use_store(city_dir: Path, url: str) -> None:
    """Point the city at the PostgreSQL store ``url`` (``zhongshu demo --store``): write its
    ``[store]`` table into ``city.toml`` (a password goes to ``secrets.toml`` as secret
    ``store``, never into ``city.toml``), and create or upgrade its schema, saying so.

    Raises:
        ConfigError: ``city.toml`` already names another store, or ``secrets.toml`` another
            ``store`` password.
        StoreUnavailable: the store cannot be reached.
    """
    import tomllib

    from zhongshu.config._toml import replace_file, toml_string
    from zhongshu.config.secrets import stored_secret, write_secret
    from zhongshu.errors import ConfigError
    from zhongshu.stores import schema
    from zhongshu.stores.postgres import Database

    if not url.startswith(("postgresql://", "postgres://")):
        raise ZhongshuError("--store takes a URL that starts with postgresql://")
    bare, password = without_password(url)
    db = Database(url, max_size=2)  # reachable before anything is written
    try:
        if password is not None:
            held = stored_secret(city_dir, "store")
            if held is None:
                write_secret(city_dir, "store", password)
            elif held != password:
                raise ConfigError("secrets.toml already holds another password as secret "
                                  "`store`; change it there", path=str(city_dir /
                                                                        "secrets.toml"))
        path = city_dir / "city.toml"
        text = path.read_text(encoding="utf-8")
        have = tomllib.loads(text).get("store", {}).get("url")
        if have is None:
            table = f"\n[store]\nurl = {toml_string(bare)}\n"
            if password is not None:
                table += 'password_secret = "store"\n'
                reader = windows_role(db, city_dir)
                if reader:
                    table += (f"windows_user = {toml_string(reader)}\n"
                              'windows_password_secret = "windows"\n')
            replace_file(path, text.rstrip("\n") + "\n" + table)
            out.print(f"Wrote [store] url into {path} (every command on {city_dir}/ now uses "
                      "that store).", highlight=False, markup=False)
        elif have != bare:
            raise ConfigError("city.toml names another store already ([store] url); edit "
                              "it, or rebuild the demo with --fresh", path=str(path))
        before = schema.status(db)
        out.print(f"Creating the hub's schema in {db.label} (what `zhongshu db upgrade` "
                  "does)…" if before.pending else f"The hub's schema in {db.label} is up "
                  "to date.", highlight=False)
        for m in schema.upgrade(db):
            out.print(f"  applied {m.version:04d} {m.name}", highlight=False)
    finally:
        db.close()
