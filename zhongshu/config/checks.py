"""What spans the files of a city, checked once all are loaded: names unique city-wide,
datasets on their member's own sources, grants on real datasets and columns, owners' SQL that
is SQL of the kind it stands for, and source kinds that are installed and configured as they
require.

Owners' SQL is checked in three places, each as far as its part can see: here, that each
piece parses as what it is (a row scope one predicate, a ``query =`` one query, an ``expr`` one
expression); in the catalog, what a dataset's definition may read (``catalog.catalog``); in
policy, the rest of the firewall, as its author (``policy.owners``). Each names the file and
line, found by the locators below (:func:`grant_line`, :func:`dataset_line`,
:func:`column_line`).

Like sqlglot's optimizer rules, the checks are a tuple of functions of one signature
(:data:`CHECKS`), each raising ``ConfigError`` with the file, the line and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from importlib import metadata

from zhongshu.config._lines import find, line_of
from zhongshu.config.people import check_people
from zhongshu.config.schema import City, DatasetConfig, MemberFile, SourceConfig, StreamConfig
from zhongshu.config.streams import stream_columns
from zhongshu.errors import ConfigError

SOURCE_KINDS = "zhongshu.sources"  # the entry point group of source kinds


def unique_names(city: City) -> None:
    """Streams, sources and datasets are named once city-wide; a dataset reads a source of its
    own member."""
    sources: dict[str, str] = {}
    datasets: dict[str, str] = {}
    streams: dict[str, str] = {}
    for name, mf in city.members.items():
        path = city.member_files[name]
        text = path.read_text(encoding="utf-8")
        for stream in stream_columns(mf):
            if stream in streams:
                raise ConfigError(f"stream `{stream}` is already declared by member "
                                  f"`{streams[stream]}`; stream names are city-wide",
                                  path=str(path), line=find(text, f'"{stream}"'))
            streams[stream] = name
        for s in mf.sources:
            if s.name in sources:
                raise ConfigError(f"source `{s.name}` is already declared by member "
                                  f"`{sources[s.name]}`; source names are city-wide",
                                  path=str(path), line=find(text, f'"{s.name}"'))
            sources[s.name] = name
        own = {s.name for s in mf.sources}
        for d in mf.datasets:
            if d.source not in own:
                raise ConfigError(f"dataset `{d.name}` uses source `{d.source}`, which this "
                                  "member does not declare (declared: "
                                  f"{', '.join(sorted(own)) or 'none'})",
                                  path=str(path), line=find(text, f'"{d.source}"'))
            if d.name in datasets:
                raise ConfigError(f"dataset `{d.name}` is already declared by member "
                                  f"`{datasets[d.name]}`", path=str(path),
                                  line=find(text, f'"{d.name}"'))
            datasets[d.name] = name


def grants(city: City) -> None:
    """Each grant names a member of the city, the owner's own datasets and their columns, and
    grants a dataset at most once per consumer and purpose."""
    declared = {d.name: d for mf in city.members.values() for d in mf.datasets}
    for name, mf in city.members.items():
        _check_grants(city, name, mf, declared)


def _check_grants(city: City, owner: str, mf: MemberFile,
                  declared: dict[str, DatasetConfig]) -> None:
    path = city.member_files[owner]
    text = path.read_text(encoding="utf-8")
    seen: set[tuple[str, str, str]] = set()
    for g in mf.grants:
        line = find(text, f'"{g.consumer}"')

        def fail(msg: str, line: int | None = line, consumer: str = g.consumer) -> None:
            raise ConfigError(f"grant to `{consumer}`: {msg}", path=str(path), line=line)

        if g.consumer not in city.members:
            fail(f"no member `{g.consumer}` in this city")
        if g.consumer == owner:
            fail("an owner needs no grant on its own datasets")
        own = {d.name for d in mf.datasets}
        peer = city.federation.peer(owner) if city.federation is not None else None
        unions = {u.name for u in city.federation.unions if u.owner == owner} \
            if city.federation is not None else set()
        for ds in g.datasets:
            if peer is not None and peer.owns(ds) or ds in unions:
                # a remote dataset, granted onward: its columns are the peer's catalog's,
                # known only once it is fetched (a column it does not offer is never read)
                for purpose in g.purposes:
                    key = (g.consumer, ds, purpose)
                    if key in seen:
                        fail(f"`{ds}` is granted twice for purpose `{purpose}`; merge the "
                             "grants")
                    seen.add(key)
                continue
            if ds not in own:
                fail(f"`{ds}` is not a dataset of `{owner}`; a member grants only its own "
                     "datasets")
            cols = {c.name for c in declared[ds].columns}
            for col in list(g.columns or []) + list(g.masking):
                if col not in cols and len(g.datasets) == 1:
                    fail(f"`{ds}` has no column `{col}`", find(text, col))
            for purpose in g.purposes:
                key = (g.consumer, ds, purpose)
                if key in seen:
                    fail(f"`{ds}` is granted twice for purpose `{purpose}`; merge the grants")
                seen.add(key)
        if isinstance(g.row_scope, dict):
            for ds in g.row_scope:
                if ds not in g.datasets:
                    fail(f"row_scope names `{ds}`, which this grant does not cover")


def source_kinds(city: City) -> None:
    """Each source and stream is of an installed kind (entry point group ``zhongshu.sources``)
    and configured as that kind requires (its ``check_config``: a file kind needs ``path``, a
    database kind ``database``, a stream kind is declared under ``[[streams]]``)."""
    installed = {ep.name: ep for ep in metadata.entry_points(group=SOURCE_KINDS)}
    for name, mf in city.members.items():
        path = city.member_files[name]
        text: str | None = None
        tables: list[tuple[str, Sequence[SourceConfig | StreamConfig]]] = [
            ("sources", mf.sources), ("streams", mf.streams)]
        for table, configs in tables:
            for i, cfg in enumerate(configs):
                problem = _kind_problem(installed, cfg)
                if problem is not None:
                    text = text if text is not None else path.read_text(encoding="utf-8")
                    raise ConfigError(f"{table}.{i}: {problem}", path=str(path),
                                      line=line_of(text, (table, i, "kind")))


def _kind_problem(installed: dict[str, metadata.EntryPoint],
                  cfg: SourceConfig | StreamConfig) -> str | None:
    ep = installed.get(cfg.kind)
    if ep is None:
        have = ", ".join(sorted(installed)) or "none"
        return (f"no source kind `{cfg.kind}` is installed (installed: {have}); a kind comes "
                "with the package that registers it in the `zhongshu.sources` entry point "
                "group (from a source checkout: `pip install -e .`)")
    try:
        cls = ep.load()
    except ImportError as e:
        return (f"source kind `{cfg.kind}` cannot be loaded ({e}); install its driver, e.g. "
                f"`pip install 'zhongshu[{cfg.kind}]'`")
    try:
        cls.check_config(cfg)
    except ValueError as e:
        return str(e)
    return None


def owner_sql(city: City) -> None:
    """Each row scope parses as one predicate, each dataset ``query =`` as one query, each
    column ``expr`` as one expression (what they may read and call is checked later, by the
    catalog and the firewall)."""
    declared = {name: [c.name for c in d.columns] for name, (_, d) in city.datasets().items()}
    for owner, mf in city.members.items():
        path = city.member_files[owner]
        text: str | None = None
        for i, g in enumerate(mf.grants):
            scopes = g.row_scope if isinstance(g.row_scope, dict) else \
                {ds: g.row_scope for ds in g.datasets}
            for ds, scope in scopes.items():
                problem = _sql_problem(scope, "predicate") if scope else None
                if problem is None and scope and ds in declared:
                    problem = _unknown_columns(scope, declared[ds])
                if problem is not None:
                    text = text if text is not None else path.read_text(encoding="utf-8")
                    raise ConfigError(f"grant to `{g.consumer}`: row_scope on `{ds}`: "
                                      f"{problem}", path=str(path),
                                      line=grant_line(text, i, ds))
        for d in mf.datasets:
            pieces = [("query", d.query, "query", None)] + [
                ("expr", c.expr, "expression", c.name) for c in d.columns]
            for key, sql, kind, column in pieces:
                problem = _sql_problem(sql, kind) if sql else None
                if problem is None:
                    continue
                text = text if text is not None else path.read_text(encoding="utf-8")
                line = dataset_line(text, d.name, key) if column is None else \
                    column_line(text, d.name, column)
                where = f"dataset `{d.name}`" + (f" column `{column}`" if column else "")
                raise ConfigError(f"{where}: {key}: {problem}", path=str(path), line=line)


def _unknown_columns(predicate: str, columns: list[str]) -> str | None:
    """What is wrong with a row scope's own columns (those outside its subqueries, which
    read other datasets): each must be a column the dataset declares.

    >>> _unknown_columns("district = 'xihu'", ["district", "id"]) is None
    True
    >>> _unknown_columns("distrct = 'xihu'", ["district", "id"])
    'names column `distrct`, which the dataset does not declare (its columns: district, id)'
    >>> _unknown_columns("id IN (SELECT id FROM x.y WHERE zone = 1)", ["id"]) is None
    True
    """
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(predicate, read="duckdb")
    known = {c.lower() for c in columns}
    for col in tree.find_all(exp.Column):
        if col.find_ancestor(exp.Select) is None and not col.table \
                and col.name.lower() not in known:
            return (f"names column `{col.name}`, which the dataset does not declare (its "
                    f"columns: {', '.join(columns)})")
    return None


def _sql_problem(sql: str, kind: str) -> str | None:
    """What is wrong with ``sql`` as one ``kind`` (predicate, query or expression), or None.

    >>> _sql_problem("district = 'xihu'", "predicate") is None
    True
    >>> _sql_problem("SELECT 1", "predicate")
    'not a predicate: a statement or query; read other datasets in a subquery'
    >>> _sql_problem("x = 1; DROP TABLE t", "predicate")
    'must be exactly one predicate'
    """
    # sqlglot comes with the hub extra; the configuration's types are imported without it
    # (by the ledger package, which `zhongshu query --format json` uses in a base install)
    import sqlglot
    from sqlglot import exp

    try:
        found = [e for e in sqlglot.parse(sql, read="duckdb") if e is not None]
    except (sqlglot.ParseError, sqlglot.errors.TokenError, RecursionError):
        return f"not valid SQL (a {kind} in DuckDB's dialect)"
    if len(found) != 1:
        return f"must be exactly one {kind}"
    statement = isinstance(found[0], (exp.Query, exp.Command, exp.DDL, exp.DML))
    if kind == "query" and not isinstance(found[0], (exp.Select, exp.SetOperation)):
        return "not a query: one SELECT over the source's tables"
    if kind != "query" and statement:
        return f"not a{'n' if kind[0] in 'ae' else ''} {kind}: a statement or query" + (
            "; read other datasets in a subquery" if kind == "predicate" else "")
    return None


def _block(text: str, header: str, index: int) -> tuple[int, int] | None:
    """Lines ``[start, end)`` (0-based) of the ``index``-th ``[[header]]`` table of a TOML
    text, up to the next table of the same or a higher level."""
    lines = text.splitlines()
    own = re.compile(r"^\s*\[\[\s*" + re.escape(header) + r"\s*\]\]")
    seen = -1
    for n, line in enumerate(lines):
        if own.match(line):
            seen += 1
            if seen == index:
                end = next((m for m in range(n + 1, len(lines)) if own.match(lines[m]) or
                            re.match(r"^\s*\[\[?\s*(?!" + re.escape(header) + r"[.\]\s])",
                                     lines[m])), len(lines))
                return n, end
    return None


def _key_line(lines: list[str], start: int, end: int, key: str) -> int | None:
    pat = re.compile(r"^\s*\"?" + re.escape(key) + r"\"?\s*=")
    return next((n + 1 for n in range(start, end) if pat.match(lines[n])), None)


def grant_line(text: str, index: int, dataset: str) -> int | None:
    """The line of the row scope on ``dataset`` in the ``index``-th ``[[grants]]`` of a member
    file (its ``"dataset" = …`` under ``[grants.row_scope]``, or the ``row_scope =`` line),
    else the grant's first line.

    >>> grant_line('[[grants]]\\nconsumer = "a"\\n\\n[[grants]]\\nconsumer = "b"\\n'
    ...            '[grants.row_scope]\\n"x.y" = "1 = 1"\\n', 1, "x.y")
    7
    """
    block = _block(text, "grants", index)
    if block is None:
        return find(text, "row_scope")
    lines = text.splitlines()
    start, end = block
    return _key_line(lines, start, end, dataset) or _key_line(lines, start, end, "row_scope") \
        or start + 1


def _named(lines: list[str], name: str) -> int | None:
    """The line (1-based) of ``name = "<name>"``, else of the first mention of ``"<name>"``."""
    pat = re.compile(r"^\s*name\s*=\s*\"" + re.escape(name) + r"\"")
    return next((n + 1 for n, line in enumerate(lines) if pat.match(line)), None) or \
        find("\n".join(lines), f'"{name}"')


def dataset_line(text: str, dataset: str, key: str) -> int | None:
    """The line of ``key`` (``query``, ``table``…) of the dataset called ``dataset`` in a
    member file, else the line that names the dataset."""
    lines = text.splitlines()
    named = _named(lines, dataset)
    if named is None:
        return None
    end = next((m for m in range(named, len(lines)) if re.match(r"^\s*\[\[\s*datasets\s*\]\]",
                                                              lines[m])), len(lines))
    return _key_line(lines, named - 1, end, key) or named


def column_line(text: str, dataset: str, column: str) -> int | None:
    """The line of the ``expr`` of ``column`` of ``dataset`` in a member file, else the line
    that names the column (or the dataset)."""
    lines = text.splitlines()
    named = _named(lines, dataset)
    if named is None:
        return None
    for n in range(named, len(lines)):
        if re.match(r"^\s*\[\[\s*datasets\s*\]\]", lines[n]):
            break
        if re.search(r"\bname\s*=\s*\"" + re.escape(column) + r"\"", lines[n]):
            if "expr" in lines[n]:
                return n + 1  # an inline table
            end = next((m for m in range(n + 1, len(lines)) if lines[m].lstrip().startswith(
                "[")), len(lines))
            return _key_line(lines, n, end, "expr") or n + 1
    return named


def scenario_callers(city: City) -> None:
    """Only scenario members declare callers, and the members they name are the city's."""
    for name, mf in city.members.items():
        if not mf.callers:
            continue
        path = city.member_files[name]
        text = path.read_text(encoding="utf-8")
        if mf.member.kind != "scenario":
            raise ConfigError(f"member `{name}` is of kind `{mf.member.kind}`; only members "
                              "of kind `scenario` declare `[[callers]]`", path=str(path),
                              line=find(text, "[[callers]]"))
        for i, rule in enumerate(mf.callers):
            for m in rule.members:
                if m not in city.members:
                    raise ConfigError(f"callers: no member `{m}` in this city",
                                      path=str(path),
                                      line=line_of(text, ("callers", i, "members")))


def federation(city: City) -> None:
    """Each peer is a member of kind ``hub``; no local dataset is named in a peer's namespace
    (a peer's catalog can then never shadow a local dataset)."""
    fed = city.federation
    if fed is None:
        return
    path = city.root / "city.toml"
    text = path.read_text(encoding="utf-8")
    for peer in fed.peers:
        mf = city.members.get(peer.name)
        if mf is None or mf.member.kind != "hub":
            raise ConfigError(f"federation.peers `{peer.name}`: declare it as a member of kind "
                              f"`hub` (members/{peer.name}.toml)", path=str(path),
                              line=find(text, f'"{peer.name}"'))
    for union in fed.unions:
        if union.owner not in city.members:
            raise ConfigError(f"federation.unions `{union.name}`: owner `{union.owner}` is no "
                              "member of this city", path=str(path),
                              line=find(text, f'"{union.owner}"'))
        if union.name in city.datasets():
            raise ConfigError(f"federation.unions `{union.name}` is also a local dataset",
                              path=str(path), line=find(text, f'"{union.name}"'))
    for name, (owner, _) in city.datasets().items():
        holder = fed.owner_of(name)
        if holder is not None and holder.namespace:  # a city peer's names yield to local ones
            raise ConfigError(f"dataset `{name}` of `{owner}` is in the namespace of peer "
                              f"`{holder.name}` (`{holder.namespace}_`): rename it",
                              path=str(city.member_files[owner]))


def entity_types(city: City) -> None:
    """Datasets offered as one NGSI-LD type agree: one vocabulary, one column type per
    attribute, and id templates none of which can make another's ids (so an id names one
    dataset); an attribute name expands to one URI city-wide (the hub serves one context)."""
    seen: dict[str, list[tuple[str, DatasetConfig]]] = {}
    expansions: dict[str, tuple[str, str]] = {}
    for name, mf in city.members.items():
        for d in mf.datasets:
            if d.entity is not None:
                seen.setdefault(d.entity.type, []).append((name, d))
    for etype, offered in seen.items():
        types: dict[str, tuple[str, str]] = {}
        for i, (member, d) in enumerate(offered):
            m = d.entity
            assert m is not None
            path = city.member_files[member]
            text = path.read_text(encoding="utf-8")

            def fail(msg: str, key: str = "entity", path: object = path, text: str = text,
                     d: DatasetConfig = d) -> None:
                raise ConfigError(f"dataset `{d.name}`: entity: {msg}", path=str(path),
                                  line=dataset_line(text, d.name, key))

            cols = {c.name: c.type for c in d.columns}
            named = [(k, k) for k in m.keys()] + [
                (a, m.attribute(a).column) for a in m.attributes] + (
                [("lon", m.location.lon), ("lat", m.location.lat)] if m.location else []) + (
                [("observed_at", m.observed_at)] if m.observed_at else [])
            for key, column in named:
                if column not in cols:
                    fail(f"`{column}` is not a column of this dataset (its columns: "
                         f"{', '.join(sorted(cols))})", key if key != column else "id")
            first = offered[0][1].entity
            assert first is not None
            if m.vocabulary != first.vocabulary:
                fail(f"type `{etype}` is offered under vocabulary `{first.vocabulary}` by "
                     f"`{offered[0][1].name}`; use the same", "vocabulary")
            prefix = m.id.split("{", 1)[0]
            for _, other in offered[:i]:
                assert other.entity is not None
                theirs = other.entity.id.split("{", 1)[0]
                if prefix.startswith(theirs) or theirs.startswith(prefix):
                    fail(f"id `{m.id}` could make the ids of `{other.name}` "
                         f"(`{other.entity.id}`): give each dataset its own prefix", "id")
            for attr in m.attributes:
                a = m.attribute(attr)
                typ = cols[a.column]
                if attr in types and types[attr][0] != typ:
                    fail(f"attribute `{attr}` is {types[attr][0]} in `{types[attr][1]}` but "
                         f"{typ} here; map columns of one type", attr)
                types.setdefault(attr, (typ, d.name))
                uri = m.expand(attr)
                if expansions.setdefault(attr, (uri, d.name))[0] != uri:
                    fail(f"attribute `{attr}` expands to `{expansions[attr][0]}` in "
                         f"`{expansions[attr][1]}`, to `{uri}` here; rename one", attr)
            if expansions.setdefault(etype, (m.expand(etype), d.name))[0] != m.expand(etype):
                fail(f"`{etype}` is also an attribute name elsewhere; rename one", "type")


CHECKS: tuple[Callable[[City], None], ...] = (source_kinds, unique_names, grants, owner_sql,
                                              scenario_callers, check_people, federation,
                                              entity_types)
"""Run in this order by :func:`zhongshu.config.load.load_city`; each raises ``ConfigError``."""
