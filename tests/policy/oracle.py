"""An oracle for what the hub may answer, built without the rewriter.

Nothing here imports ``zhongshu``: the grants are read from the member files with ``tomllib``,
the raw rows from the demo's own files and databases (``sqlite3``, ``pyarrow.parquet``,
``pyarrow.csv``, ``psycopg``, ``pymysql``), and the rules are the documented ones (grants:
``policy/grants.py``'s docstring; masks: ``config/grants.py``'s ``Mask`` and
``docs/security.md``), written again here in plain Python.

For one caller and purpose the oracle builds, in a fresh DuckDB, the table each dataset *is*
to that caller — granted columns only, masks applied, rows within the row scope — under the
dataset's own name (``traffic.passages``), and runs the caller's SQL there. Keyed pseudonyms
cannot be computed without the hub's secret: the oracle learns them from one hub answer per
dataset and checks only their *structure* (see :func:`learn_pseudonyms`).
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

OPEN = ("public", "internal")  # the columns a grant without `columns` covers
PRIVATE = ("personal", "sensitive")  # never to leave raw
DECOY = "zs_oracle_decoy"  # the one column of the stand-ins for names outside any scope


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    classification: str
    expr: str | None


@dataclass(frozen=True)
class DatasetDef:
    name: str
    owner: str
    source: dict[str, Any]
    table: str
    listed: bool
    columns: tuple[Column, ...]

    @property
    def namespace(self) -> str:
        return self.name.split(".")[0]

    @property
    def short(self) -> str:
        return self.name.split(".")[1]

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name.lower()), None)


@dataclass(frozen=True)
class GrantDef:
    owner: str
    consumer: str
    dataset: str
    purposes: tuple[str, ...]
    columns: tuple[str, ...]
    masking: dict[str, dict[str, Any]]
    row_scope: str | None
    expires: datetime | None


@dataclass(frozen=True)
class View:
    """What one dataset is to one caller for one purpose."""

    dataset: DatasetDef
    columns: tuple[str, ...]
    masking: dict[str, dict[str, Any]]
    row_scope: str | None
    owner: bool


class CityFiles:
    """The city's members, datasets and grants, read from ``members/*.toml``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.members: dict[str, dict[str, Any]] = {}
        self.datasets: dict[str, DatasetDef] = {}
        self.grants: list[GrantDef] = []
        for path in sorted((root / "members").glob("*.toml")):
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
            name = doc["member"]["name"]
            self.members[name] = doc
            sources = {s["name"]: s for s in doc.get("sources", [])}
            for d in doc.get("datasets", []):
                cols = tuple(Column(c["name"].lower(), c["type"], c["classification"],
                                    c.get("expr")) for c in d["columns"])
                self.datasets[d["name"]] = DatasetDef(
                    d["name"], name, sources[d["source"]], d.get("table", d["name"]),
                    bool(d.get("listed", True)), cols)
        for name, doc in self.members.items():
            for g in doc.get("grants", []):
                for ds_name in g["datasets"]:
                    ds = self.datasets[ds_name]
                    declared = [c.name for c in ds.columns]
                    if g.get("columns") is None:
                        cols = tuple(c.name for c in ds.columns if c.classification in OPEN)
                    else:
                        cols = tuple(c for c in g["columns"] if c in declared)
                    masks = {c: ({"kind": m} if isinstance(m, str) else dict(m))
                             for c, m in g.get("masking", {}).items() if c in declared}
                    scope = g.get("row_scope")
                    if isinstance(scope, dict):
                        scope = scope.get(ds_name)
                    self.grants.append(GrantDef(name, g["consumer"], ds_name,
                                                tuple(g["purposes"]), cols, masks, scope,
                                                g.get("expires")))

    def purposes(self, member: str) -> list[str]:
        """The purposes of the grants ``member`` holds, in file order."""
        out: list[str] = []
        for g in self.grants:
            if g.consumer == member:
                out += [p for p in g.purposes if p not in out]
        return out

    def view(self, member: str, dataset: str, purpose: str) -> View | None:
        """What ``member`` reads of ``dataset`` for ``purpose``; None: nothing (the hub
        must refuse any query naming it)."""
        ds = self.datasets[dataset]
        if ds.owner == member:
            return View(ds, tuple(c.name for c in ds.columns), {}, None, True)
        now = datetime.now(UTC)
        for g in self.grants:
            if g.consumer != member or g.dataset != dataset or purpose not in g.purposes:
                continue
            if g.expires is not None and now >= (g.expires if g.expires.tzinfo
                                                 else g.expires.replace(tzinfo=UTC)):
                continue
            return View(ds, g.columns, g.masking, g.row_scope, False)
        return None

    def views(self, member: str, purpose: str) -> dict[str, View]:
        return {n: v for n in self.datasets if (v := self.view(member, n, purpose))}


# --- raw rows -------------------------------------------------------------------------------

def _server(source: dict[str, Any], engine: str) -> dict[str, Any]:
    conn = {"host": source["host"], "port": source["port"], "user": source["user"]}
    if source.get("password_secret"):  # the demo takes it from the environment too
        pw = os.environ.get("ZHONGSHU_PG_PASSWORD" if engine == "postgres"
                            else "ZHONGSHU_MYSQL_PASSWORD")
        if pw:
            conn["password"] = pw
    return conn


def read_raw(root: Path, ds: DatasetDef) -> pa.Table:
    """The rows of ``ds``'s table in its source, as the source holds them."""
    src = ds.source
    kind = src["kind"]
    if kind == "sqlite":
        con = sqlite3.connect(f"file:{root / src['path']}?mode=ro", uri=True)
        try:
            cur = con.execute(f'SELECT * FROM "{ds.table}"')
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        finally:
            con.close()
        return _table(names, rows)
    if kind in ("parquet", "csv"):
        base = root / src["path"]
        single = base / f"{ds.table}.{kind}"
        files = [single] if single.exists() else sorted((base / ds.table).glob(f"*.{kind}"))
        if kind == "parquet":
            import pyarrow.parquet as pq
            return pa.concat_tables([pq.read_table(f) for f in files])
        import pyarrow.csv as pacsv
        return pa.concat_tables([pacsv.read_csv(f) for f in files])
    if kind == "postgres":
        import psycopg
        with psycopg.connect(dbname=src["database"], **_server(src, kind)) as pg:
            cur = pg.execute(f'SELECT * FROM "{ds.table}"')
            names = [d.name for d in cur.description or []]
            return _table(names, cur.fetchall())
    if kind == "mysql":
        import pymysql
        my = pymysql.connect(database=src["database"], **_server(src, kind))
        try:
            with my.cursor() as cur:
                cur.execute(f"SELECT * FROM `{ds.table}`")
                names = [d[0] for d in cur.description]
                return _table(names, list(cur.fetchall()))
        finally:
            my.close()
    raise ValueError(f"the oracle cannot read sources of kind {kind}")


def _table(names: list[str], rows: list[Any]) -> pa.Table:
    cols = {n: [r[i] for r in rows] for i, n in enumerate(names)}
    out = {}
    for n, values in cols.items():
        kinds = {type(v) for v in values if v is not None}
        if len(kinds) > 1 and kinds <= {int, float}:
            values = [None if v is None else float(v) for v in values]
        elif len(kinds) > 1:
            values = [None if v is None else str(v) for v in values]
        out[n] = pa.array(values) if kinds else pa.array(values, type=pa.string())
    return pa.table(out)


# --- masks (the documented formulas) ----------------------------------------------------------

def partial(value: str | None, mask: dict[str, Any]) -> str | None:
    """``partial``: ``keep_start`` leading and ``keep_end`` trailing characters, the middle
    shown as ``separator + fill``; ``pattern = "birth_year"`` keeps only the birth year of an
    18-character id number.

    >>> partial("浙A12345", {"kind": "partial", "separator": "·"})
    '浙A·****45'
    >>> partial("330106199001011234", {"kind": "partial", "pattern": "birth_year"})
    '1990'
    >>> partial("12", {"kind": "partial", "pattern": "birth_year"}) is None
    True
    """
    if value is None:
        return None
    if mask.get("pattern") == "birth_year":
        return value[6:10] if len(value) == 18 else None
    start, end = int(mask.get("keep_start", 2)), int(mask.get("keep_end", 2))
    fill = mask.get("separator", "") + mask.get("fill", "****")
    return (value[:start] if start else "") + fill + (value[-end:] if end else "")


def generalize(value: Any, mask: dict[str, Any]) -> Any:
    """``generalize``: times truncated to ``unit``, numbers rounded to ``digits`` decimals,
    else to a multiple of ``step`` (default 1).

    >>> generalize(datetime(2026, 3, 4, 5, 6, 7), {"unit": "hour"})
    datetime.datetime(2026, 3, 4, 5, 0)
    >>> generalize(1234, {"step": 100}), generalize(30.123456, {"digits": 2})
    (1200, 30.12)
    """
    if value is None:
        return None
    unit = mask.get("unit")
    if unit:
        v = value if isinstance(value, datetime) else datetime.combine(value, time())
        if unit == "minute":
            return v.replace(second=0, microsecond=0)
        if unit == "hour":
            return v.replace(minute=0, second=0, microsecond=0)
        day = v.replace(hour=0, minute=0, second=0, microsecond=0)
        if unit == "day":
            return day
        if unit == "week":  # ISO weeks start on Monday
            return day - timedelta(days=day.weekday())
        if unit == "month":
            return day.replace(day=1)
        return day.replace(month=1, day=1)
    if mask.get("digits") is not None:
        return round(float(value), int(mask["digits"]))
    step = float(mask.get("step") or 1)
    q = float(value) / step
    rounded = math.floor(q + 0.5) if q >= 0 else -math.floor(-q + 0.5)  # half away from 0
    out = rounded * step
    return type(value)(out) if isinstance(value, int) else out


# --- pseudonyms: learned from the hub, checked for structure -----------------------------------

_FLOAT = re.compile(r"^-?\d+\.\d+(e[-+]?\d+)?$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def learn_pseudonyms(raw_rows: list[dict[str, Any]], hub_rows: list[dict[str, Any]],
                     pseudonymised: Iterable[str], known: dict[str, str]) -> list[str]:
    """Extend ``known`` (raw value → pseudonym, for one key) from one hub answer.

    ``raw_rows`` are the caller's rows of one dataset before pseudonymisation, ``hub_rows``
    the hub's answer to ``SELECT <the same columns> FROM <dataset>``; rows are matched on
    their other columns. Returns the structural violations found (empty: none): a row count
    that differs, a pseudonym that is not 32 hex digits, a raw value shown, one value with two
    pseudonyms or two values with one.
    """
    cols = list(pseudonymised)
    problems: list[str] = []
    if len(raw_rows) != len(hub_rows):
        problems.append(f"{len(hub_rows)} rows answered, {len(raw_rows)} in the view")
    keys = [c for c in (raw_rows[0] if raw_rows else {}) if c not in cols]
    groups: dict[tuple[Any, ...], tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    for r in raw_rows:
        groups.setdefault(tuple(canon(r[k]) for k in keys), ([], []))[0].append(r)
    for r in hub_rows:
        groups.setdefault(tuple(canon(r.get(k)) for k in keys), ([], []))[1].append(r)
    raws = {r[c] for r in raw_rows for c in cols if r[c] is not None}
    reverse = {v: k for k, v in known.items()}
    for c in cols:
        for raw_group, hub_group in groups.values():
            if len(raw_group) != len(hub_group):
                problems.append("rows differ in their other columns")
                continue
            for a, b in zip(sorted(raw_group, key=lambda r: repr(r[c])),
                            sorted(hub_group, key=lambda r: repr(r[c])), strict=True):
                raw, p = a[c], b[c]
                if raw is None or p is None:
                    if (raw is None) != (p is None):
                        problems.append(f"{c}: NULL and a value")
                    continue
                if p in raws or not HEX32.match(str(p)):
                    problems.append(f"{c}: not a pseudonym")
                    continue
                if len(raw_group) > 1 and raw not in known:
                    continue  # ambiguous in this group: learnt from another
                if known.get(raw, p) != p or reverse.get(p, raw) != raw:
                    problems.append(f"{c}: not one pseudonym per value")
                known[raw] = p
                reverse[p] = raw
    # values only seen in ambiguous groups: any assignment within a group gives the same rows
    for c in cols:
        for raw_group, hub_group in groups.values():
            left = sorted({r[c] for r in raw_group if r[c] is not None and r[c] not in known})
            free = sorted({r[c] for r in hub_group if r[c] is not None} - set(reverse))
            for raw, p in zip(left, free, strict=False):
                known[raw] = p
                reverse[p] = raw
    return problems


# --- the oracle ----------------------------------------------------------------------------

FAMILY = {"VARCHAR": "text", "BIGINT": "num", "INTEGER": "num", "DOUBLE": "num",
          "BOOLEAN": "bool", "TIMESTAMP": "time", "DATE": "time"}


def family(sql_type: str) -> str:
    """``num``, ``text``, ``time`` or ``bool``.

    >>> family("DECIMAL(10,2)"), family("VARCHAR")
    ('num', 'text')
    """
    return "num" if sql_type.upper().startswith("DECIMAL") else FAMILY.get(sql_type.upper(),
                                                                             "text")


# sqlglot reads iif as IF; DuckDB itself has no iif
_MACROS = ("CREATE MACRO iif(c, a, b) AS CASE WHEN c THEN a ELSE b END",)


@dataclass
class Oracle:
    """The raw datasets of a city, and the tables they are to each caller."""

    city: CityFiles
    raw: duckdb.DuckDBPyConnection = field(init=False)
    private: set[str] = field(init=False)  # every raw personal or sensitive value
    _rows: dict[Any, list[dict[str, Any]]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.raw = duckdb.connect()
        self.private = set()
        for ds in self.city.datasets.values():
            table = read_raw(self.city.root, ds)
            self.raw.register("zs_src", table)
            self.raw.execute(f'CREATE SCHEMA IF NOT EXISTS "{ds.namespace}"')
            names = set(table.column_names)
            cols = []
            for c in ds.columns:
                if c.expr:
                    e = c.expr
                elif c.name in names:
                    e = f'"{c.name}"'
                else:
                    e = "NULL"
                cols.append(f'CAST({e} AS {c.type}) AS "{c.name}"')
            self.raw.execute(f'CREATE TABLE "{ds.namespace}"."{ds.short}" AS SELECT '
                             f'{", ".join(cols)} FROM zs_src')
            self.raw.unregister("zs_src")
            for c in ds.columns:
                if c.classification in PRIVATE:
                    self.private |= {str(v) for (v,) in self.raw.execute(
                        f'SELECT DISTINCT "{c.name}" FROM "{ds.namespace}"."{ds.short}" '
                        f'WHERE "{c.name}" IS NOT NULL').fetchall()}

    def rows(self, view: View) -> list[dict[str, Any]]:
        """The rows of ``view`` before pseudonymisation: granted columns, other masks
        applied, within the row scope (evaluated over the raw datasets)."""
        key = (view.dataset.name, view.columns, view.row_scope, repr(view.masking))
        if key not in self._rows:
            self._rows[key] = self._compute(view)
        return [dict(r) for r in self._rows[key]]

    def _compute(self, view: View) -> list[dict[str, Any]]:
        ds = view.dataset
        where = f" WHERE {view.row_scope}" if view.row_scope else ""
        cur = self.raw.execute(f'SELECT * FROM "{ds.namespace}"."{ds.short}"{where}')
        names = [d[0] for d in cur.description]
        out = []
        for r in cur.fetchall():
            row = dict(zip(names, r, strict=True))
            masked = {}
            for c in view.columns:
                m = view.masking.get(c)
                v = row[c]
                kind = m["kind"] if m else None
                if kind == "redact":
                    v = None
                elif kind == "partial":
                    v = partial(None if v is None else str(v), m or {})
                elif kind == "generalize":
                    v = generalize(v, m or {})
                masked[c] = v
            out.append(masked)
        return out

    def connect(self, views: dict[str, View], pseudonyms: dict[str, dict[str, str]],
                key_of: Callable[[View, str], str], decoys: Iterable[str] = ()
                ) -> duckdb.DuckDBPyConnection:
        """A fresh DuckDB holding each view under its dataset name, pseudonymised columns
        holding the learnt pseudonyms (``pseudonyms[key_of(view, column)]``), and an empty
        stand-in table for each of ``decoys`` (names that only a CTE may give meaning to)."""
        con = duckdb.connect()
        for m in _MACROS:
            con.execute(m)
        for name in decoys:
            con.execute(f'CREATE TABLE IF NOT EXISTS main."{name}" ({DECOY} INTEGER)')
        for view in views.values():
            ds = view.dataset
            rows = self.rows(view)
            for c in view.columns:
                m = view.masking.get(c)
                if m and m["kind"] == "pseudonym":
                    known = pseudonyms.get(key_of(view, c), {})
                    for r in rows:
                        if r[c] is not None:
                            r[c] = known.get(r[c], "zs-unknown-" + str(len(known)))
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{ds.namespace}"')
            types = {c.name: ("VARCHAR" if view.masking.get(c.name, {}).get("kind") ==
                              "pseudonym" else c.type) for c in ds.columns}
            cols = ", ".join(f'"{c}" {types[c]}' for c in view.columns)
            con.execute(f'CREATE TABLE "{ds.namespace}"."{ds.short}" ({cols})')
            if rows:
                con.register("zs_rows", pa.Table.from_pylist(rows))
                con.execute(f'INSERT INTO "{ds.namespace}"."{ds.short}" SELECT '
                            + ", ".join(f'CAST("{c}" AS {types[c]})' for c in view.columns)
                            + " FROM zs_rows")
                con.unregister("zs_rows")
        return con

    def visible_values(self, views: dict[str, View]) -> set[str]:
        """Every value the caller legitimately sees in its views (as text)."""
        seen: set[str] = set()
        for view in views.values():
            for r in self.rows(view):
                seen |= {str(v) for c, v in r.items() if v is not None
                         and view.masking.get(c, {}).get("kind") != "pseudonym"}
        return seen


# --- comparing answers -----------------------------------------------------------------------

def canon(v: Any) -> Any:
    """A value in a form that compares equal across engines and drivers.

    >>> canon(True), canon(Decimal("2.50")), canon(2), canon(1 / 3)
    (1, '2.5', '2', '0.333333333')
    """
    if v is None:
        return None
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float, Decimal)):
        f = float(v)
        if math.isnan(f):
            return "nan"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        if f == 0:
            return "0"
        return f"{f:.9g}"
    if isinstance(v, datetime):
        if v.tzinfo is not None:
            v = v.astimezone(UTC).replace(tzinfo=None)
        return v.isoformat(sep=" ")
    if isinstance(v, date):
        return datetime.combine(v, time()).isoformat(sep=" ")
    if isinstance(v, (time, timedelta)):
        return str(v)
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, dict):
        return tuple(sorted((str(k), canon(x)) for k, x in v.items()))
    if isinstance(v, str) and _FLOAT.match(v):  # a number cast to text: its digits depend
        return canon(float(v))                  # on the engine's type for it (see report)
    if isinstance(v, (list, tuple)):
        return tuple(canon(x) for x in v)
    return str(v)


def multiset(rows: Iterable[Iterable[Any]]) -> list[tuple[Any, ...]]:
    """Rows as a sorted list of canonical tuples."""
    return sorted((tuple(canon(v) for v in r) for r in rows), key=repr)


def holds(cell: str, forbidden: set[str], lengths: Iterable[int]) -> bool:
    """Whether ``cell`` is a forbidden value or holds one of ``lengths`` characters.

    >>> holds("x浙A12345y", {"浙A12345"}, {7}), holds("浙A1234", {"浙A12345"}, {7})
    (True, False)
    """
    if cell in forbidden:
        return True
    return any(cell[i:i + n] in forbidden for n in lengths if len(cell) > n
               for i in range(len(cell) - n + 1))


def cells(rows: Iterable[Iterable[Any]]) -> Iterable[str]:
    """Every cell of an answer as text (nested values flattened)."""
    def flat(v: Any) -> Iterable[str]:
        if v is None:
            return
        if isinstance(v, dict):
            for x in v.values():
                yield from flat(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                yield from flat(x)
        else:
            yield str(v)
    for r in rows:
        for v in r:
            yield from flat(v)
