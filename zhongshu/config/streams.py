"""Streams served as datasets: each ``[[aggregates]]`` entry of a member becomes a dataset over
the hub's own window store of that member (one SQLite file, or one schema of the hub's
PostgreSQL store), read like any other source.

The windows are filled by ``zhongshu.streams``; here is only what the configuration implies:
the datasets, their columns, and the source that serves them.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from zhongshu.config._base import Column
from zhongshu.config._lines import find
from zhongshu.config.schema import City, DatasetConfig, MemberFile, SourceConfig
from zhongshu.config.settings import StoreSettings
from zhongshu.errors import ConfigError

_MEASURE = re.compile(
    r"^\s*(count|sum|avg|min|max|last)\s*\(\s*(\*|[a-z_][a-z0-9_]*)\s*\)\s*$")


def parse_measure(text: str) -> tuple[str, str | None]:
    """``("count", None)``, ``("avg", "speed_kmh")``… of a measure expression.

    Raises:
        ValueError: not one of count(*), count(col), sum(col), avg(col), min(col), max(col),
            last(col).
    """
    m = _MEASURE.match(text.lower())
    if not m or (m.group(1) != "count" and m.group(2) == "*"):
        raise ValueError(f"measure `{text}`: write count(*), count(col), sum(col), avg(col), "
                         "min(col), max(col) or last(col) (windows merge these exactly as "
                         "events arrive; count(col) counts non-null values; last is the value "
                         "of the latest event by event time)")
    return m.group(1), None if m.group(2) == "*" else m.group(2)


def stream_source(member: str) -> str:
    """Name of the source serving a member's stream windows."""
    return f"{member}-streams"


def is_window_dataset(ds: DatasetConfig, owner: str) -> bool:
    """Whether a dataset is one of ``owner``'s stream aggregates (windows)."""
    return ds.source == stream_source(owner) and not (ds.table or "").startswith("rejected__")


def stream_store(member: str) -> str:
    """Path (relative to the city) of the file holding a member's stream aggregates."""
    return f"streams/{member}.sqlite"


def window_schema(member: str) -> str:
    """The schema of the hub's PostgreSQL store holding a member's stream aggregates (when
    the hub's state is there: replicas share the windows).

    >>> window_schema("traffic_police")
    'zs_streams__traffic_police'
    >>> window_schema("traffic-police")  # not the same member: not the same schema
    'zs_streams__traffic_police_3ca80b'
    """
    safe = re.sub(r"[^a-z0-9_]", "_", member.lower())
    if safe != member:
        safe += "_" + hashlib.sha256(member.encode()).hexdigest()[:6]
    return "zs_streams__" + safe


def window_source(member: str, store: StoreSettings | None) -> SourceConfig:
    """The source serving a member's windows: its SQLite file, or — with the hub's state in
    PostgreSQL — its schema there, read as any PostgreSQL source by ``[store] windows_user``
    (never with the store's own password: the query workers hold what their sources need).

    Raises:
        ConfigError: the store's URL does not parse.
    """
    if store is None or not store.url:
        return SourceConfig(name=stream_source(member), kind="sqlite",
                            path=stream_store(member))
    from psycopg import ProgrammingError  # a PostgreSQL store: the server extra is installed
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(store.url)
    except ProgrammingError:  # its text quotes what does not parse: never shown
        raise ConfigError("[store] url does not parse: write it as "
                          "postgresql://user@host:port/database") from None
    host = str(parts.get("host") or "127.0.0.1").split(",")[0]
    return SourceConfig(name=stream_source(member), kind="postgres",
                        host="127.0.0.1" if host.startswith("/") else host,
                        port=int(str(parts.get("port") or 5432).split(",")[0]),
                        database=str(parts.get("dbname") or parts.get("user") or "postgres"),
                        schema=window_schema(member), user=store.windows_user or (
                            str(parts["user"]) if parts.get("user") else None),
                        password_secret=store.windows_password_secret or None)


def stream_columns(mf: MemberFile) -> dict[str, list[Column]]:
    """Columns of each stream of a member and of each stream's pairs, by name."""
    out: dict[str, list[Column]] = {}
    for st in mf.streams:
        out[st.name] = st.all_columns()
        for p in st.pairs:
            out[p.name] = p.columns(st.all_columns())
    return out


def check_windows_reader(city: City) -> None:
    """A hub serving stream windows from a PostgreSQL store that takes passwords needs a role
    of their own for its query workers (they never get the store's password).

    Raises:
        ConfigError: the store has a password, the city has streams, and ``[store]
            windows_user`` is not set.
    """
    store = city.store
    if not store.url or store.windows_user or not any(
            m.aggregates for m in city.members.values()):
        return
    from psycopg.conninfo import conninfo_to_dict

    if store.password_secret or conninfo_to_dict(store.url).get("password"):
        raise ConfigError("the stream windows are read from the PostgreSQL store by the query "
                          "workers, which never get the store's own password: set [store] "
                          "windows_user (a role the hub grants SELECT on the window schemas "
                          "only) and windows_password_secret in city.toml "
                          "(docs/operations.md, \"Streams across replicas\")",
                          path=str(city.root / "city.toml"))


def with_stream_datasets(mf: MemberFile, path: Path, store: StoreSettings | None = None
                         ) -> MemberFile:
    """``mf`` plus, for its stream aggregates, the datasets and the source that serve them
    (the hub's own store of that member's windows, read like any source:
    :func:`window_source`)."""
    if not mf.aggregates and not mf.streams:
        return mf
    streams = stream_columns(mf)
    owner = mf.member.name
    datasets = list(mf.datasets)
    for a in mf.aggregates:
        record = streams.get(a.stream)
        if record is None:
            raise ConfigError(f"aggregate `{a.dataset}` reads stream `{a.stream}`, which this "
                              f"member does not declare (streams: {', '.join(streams) or 'none'})",
                              path=str(path), line=find(path.read_text(), a.dataset))
        types = {c.name: c for c in record}
        cols = [Column(name="window_start", type="TIMESTAMP", classification="public",
                       description="start of the window (event time, UTC)"),
                Column(name="window_end", type="TIMESTAMP", classification="public",
                       description="end of the window (exclusive)")]
        if a.where is not None and a.where not in types:
            raise ConfigError(f"aggregate `{a.dataset}`: where `{a.where}` is not a column of "
                              f"stream `{a.stream}`", path=str(path),
                              line=find(path.read_text(), a.dataset))
        for g in a.group_by:
            if g not in types:
                raise ConfigError(f"aggregate `{a.dataset}` groups by `{g}`, not a column of "
                                  f"stream `{a.stream}`", path=str(path),
                                  line=find(path.read_text(), a.dataset))
            cols.append(types[g])
        for name, text in a.measures.items():
            try:
                fn, col = parse_measure(text)
            except ValueError as e:
                raise ConfigError(str(e), path=str(path),
                                  line=find(path.read_text(), text)) from None
            if col is not None and col not in types:
                raise ConfigError(f"measure `{name}` reads `{col}`, not a column of stream "
                                  f"`{a.stream}`", path=str(path),
                                  line=find(path.read_text(), text))
            out_type = ("BIGINT" if fn == "count" else
                        types[col].type if fn == "last" and col is not None else "DOUBLE")
            cols.append(Column(name=name, type=out_type,
                               classification=types[col].classification
                               if fn == "last" and col is not None else "internal",
                               description=text))
        cols += a.derived
        datasets.append(DatasetConfig(
            name=a.dataset, title=a.title, description=a.description or
            f"{a.window_s}-second windows over stream {a.stream}", source=stream_source(owner),
            table=a.dataset.replace(".", "__"), columns=cols, area_column=a.area_column,
            listed=a.listed))
    for st in mf.streams:
        datasets.append(DatasetConfig(
            name=f"streams.{owner.replace('-', '_')}__{st.name.replace('-', '_')}__rejected",
            title=f"Rejected messages of stream {st.name}",
            description="malformed messages, sampled, with the reason", source=stream_source(owner),
            table=f"rejected__{st.name.replace('-', '_')}", listed=False, columns=[
                Column(name="received_at", type="TIMESTAMP", classification="internal"),
                Column(name="reason", type="VARCHAR", classification="internal"),
                Column(name="sample", type="VARCHAR", classification="sensitive",
                       description="the start of the message as received")]))
    sources = [*mf.sources, window_source(owner, store)]
    return mf.model_copy(update={"datasets": datasets, "sources": sources})
