"""``zhongshu connect``: look at a department's system and propose what it could offer.

The source is read, never written (:mod:`zhongshu.sources.discover`): its tables, their
columns and types, a bounded sample of rows. Each table becomes a proposed dataset
(:mod:`zhongshu.catalog.propose`) appended to the member's file — created if the member has
none — with ``listed = false`` and no grant: nothing is offered until the owner confirms. A
password in the URL goes to ``secrets.toml``. If the city no longer loads afterwards, both
files are put back as they were.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

from zhongshu.catalog.propose import TableProposal, propose_table
from zhongshu.catalog.render import member_header, proposal_text
from zhongshu.config import City, MemberFile, MemberKind, SourceConfig, load_city
from zhongshu.config._base import NAME
from zhongshu.config._toml import replace_file
from zhongshu.config.secrets import stored_secret, write_secret
from zhongshu.errors import BadRequest, ConfigError, SourceUnavailable
from zhongshu.sources.discover import (
    SAMPLE_ROWS,
    Location,
    locate,
    open_located,
    read_shapes,
    same_system,
)


@dataclass
class Connected:
    """What one ``connect`` found and wrote."""

    member_file: Path
    created: bool  # the member file is new
    shown: str  # the source's URL without its password
    sources: list[str] = field(default_factory=list)  # source names, new or reused
    new_sources: list[str] = field(default_factory=list)
    secret: str | None = None  # the secret written to secrets.toml
    proposals: list[TableProposal] = field(default_factory=list)
    already: list[tuple[str, str]] = field(default_factory=list)  # (table, dataset)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (table, why)


def connect(city_root: Path, member: str, url: str, kind: str = "department",
            title: str = "", namespace: str | None = None, sample: int = SAMPLE_ROWS
            ) -> Connected:
    """Propose datasets over the system at ``url`` in ``member``'s file.

    Raises:
        BadRequest: a bad URL or member name.
        ConfigError: the city (or the member's file) does not load as it is.
        SourceUnavailable: the source cannot be reached or listed.
    """
    if not re.fullmatch(NAME, member):
        raise BadRequest(f"member name `{member}` must be lower-case letters, digits, - or _ "
                         "(e.g. parks)")
    if kind not in get_args(MemberKind):
        raise BadRequest(f"member kind `{kind}` is not one of {', '.join(get_args(MemberKind))}")
    namespace = namespace or member.replace("-", "_")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", namespace):
        raise BadRequest(f"namespace `{namespace}` must be lower-case letters, digits or _")
    city = load_city(city_root)
    root = city.root
    where = locate(url, root)
    path = root / "members" / f"{member}.toml"
    mf = city.members.get(member)
    result = Connected(path, mf is None, where.shown())
    taken_sources = set(city.sources())
    taken_datasets = set(city.datasets())
    blocks = []
    for source_kind in where.kinds:
        config, is_new = _source_for(where, source_kind, member, mf, taken_sources, root,
                                     result)
        taken_sources.add(config.name)
        result.sources.append(config.name)
        src = open_located(config, root, member, where.password)
        try:
            shapes = read_shapes(src, sample)
        except SourceUnavailable as e:
            raise SourceUnavailable(f"{e.message}; check the URL's host, port, database, user "
                                    "and password (nothing was written)") from e
        result.unreadable += shapes.unreadable
        covered = {d.table: d.name for d in (mf.datasets if mf else ())
                   if d.source == config.name}
        proposals = []
        for shape in shapes.tables:
            if shape.table in covered:
                result.already.append((shape.table, covered[shape.table]))
                continue
            p = _unique(propose_table(shape.table, shape.columns, shape.rows, namespace,
                                      city.districts), taken_datasets)
            taken_datasets.add(p.dataset)
            proposals.append(p)
        result.proposals += proposals
        if is_new:
            result.new_sources.append(config.name)
        if is_new or proposals:
            blocks.append(proposal_text(config if is_new else None, config.name,
                                        result.shown, proposals))
    if blocks:
        _write(city, path, member, kind, title or member, "".join(blocks), where, result)
    return result


def _source_for(where: Location, kind: str, member: str, mf: MemberFile | None,
                taken: set[str], root: Path, result: Connected) -> tuple[SourceConfig, bool]:
    """The member's existing entry for this system, or a new one (its password, if the URL
    has one, stored under a new secret name)."""
    probe = where.config("probe", kind)
    for s in (mf.sources if mf else ()):
        if same_system(s, probe, root):
            if where.password is not None and s.password_secret and \
                    stored_secret(root, s.password_secret) not in (None, where.password):
                raise BadRequest(f"source `{s.name}` of {member} is already connected with "
                                 f"another password (secret `{s.password_secret}` in "
                                 "secrets.toml); change it there")
            return s, False
    base = f"{member}-db" if len(where.kinds) == 1 else f"{member}-{kind}"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    secret = None
    if where.password is not None:
        secret, n = f"{name}-password", 2
        while stored_secret(root, secret) not in (None, where.password):
            secret, n = f"{name}-password-{n}", n + 1
        result.secret = secret
    return where.config(name, kind, secret), True


def _unique(p: TableProposal, taken: set[str]) -> TableProposal:
    if p.dataset not in taken:
        return p
    n = 2
    while f"{p.dataset}_{n}" in taken:
        n += 1
    return TableProposal(p.table, f"{p.dataset}_{n}", p.columns, p.area_column,
                         p.area_evidence, p.sampled)


def _write(city: City, path: Path, member: str, kind: str, title: str, text: str,
           where: Location, result: Connected) -> None:
    """Append ``text`` to the member file (creating it) and the password to secrets.toml,
    then load the city; put both files back if it does not load."""
    old = path.read_text(encoding="utf-8") if path.is_file() else None
    new = (old if old is not None else member_header(member, kind, title)) + text
    try:
        MemberFile.model_validate(tomllib.loads(new))
    except (tomllib.TOMLDecodeError, ValueError) as e:
        raise ConfigError(f"the proposal for {member} would not load ({e}); nothing was "
                          "written", path=str(path)) from None
    secrets = city.root / "secrets.toml"
    old_secrets = secrets.read_bytes() if secrets.is_file() else None
    if result.secret and where.password is not None and \
            stored_secret(city.root, result.secret) is None:
        write_secret(city.root, result.secret, where.password)
    path.parent.mkdir(exist_ok=True)
    mode = path.stat().st_mode & 0o777 if old is not None else 0o644
    replace_file(path, new, mode)
    try:
        load_city(city.root)
    except Exception:
        if old is None:
            path.unlink()
        else:
            replace_file(path, old, mode)
        if old_secrets is None:
            secrets.unlink(missing_ok=True)
        else:
            secrets.write_bytes(old_secrets)
        raise
