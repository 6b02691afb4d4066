"""Reading a stream message into records: JSON (an object or an array of objects) or CSV
lines, checked against the stream's declared columns; what does not fit is rejected with a
reason, never raised."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from zhongshu.config import StreamConfig

_INT = {"BIGINT", "INTEGER", "SMALLINT", "TINYINT", "UBIGINT", "UINTEGER"}
_FLOAT = {"DOUBLE", "FLOAT", "REAL"}


@dataclass
class Parsed:
    """Records (with their event time, epoch seconds) and rejections of one message."""

    records: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # reasons


def event_time(v: Any) -> float:
    """Epoch seconds of an ISO 8601 string (naive = UTC) or a number of epoch seconds.

    Raises:
        ValueError: neither.
    """
    if isinstance(v, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        t = datetime.fromisoformat(v.replace("Z", "+00:00"))
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        return t.timestamp()
    raise ValueError(f"{type(v).__name__} is not a time")


def _coerce(v: Any, type_: str) -> Any:
    if v is None or v == "":
        return None
    t = type_.upper()
    if t in _INT:
        if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
            raise ValueError(f"{v!r} is not an integer")
        return int(v)
    if t in _FLOAT:
        if isinstance(v, bool):
            raise ValueError(f"{v!r} is not a number")
        return float(v)
    if t == "BOOLEAN":
        if isinstance(v, bool):
            return v
        if str(v).lower() in ("true", "1"):
            return True
        if str(v).lower() in ("false", "0"):
            return False
        raise ValueError(f"{v!r} is not a boolean")
    return v if isinstance(v, str) else str(v)


def _converter(type_: str) -> Any:
    """A fast converter for one column type: values already of the type pass untouched."""
    t = type_.upper()
    if t in _FLOAT:
        def conv(v: Any) -> Any:
            return v if type(v) is float else _coerce(v, type_)
    elif t in _INT:
        def conv(v: Any) -> Any:
            return v if type(v) is int else _coerce(v, type_)
    elif t in ("VARCHAR", "TEXT", "STRING", "TIMESTAMP", "DATE", "TIME"):
        def conv(v: Any) -> Any:
            return v if type(v) is str and v else _coerce(v, type_)
    else:
        def conv(v: Any) -> Any:
            return _coerce(v, type_)
    return conv


class Lookups:
    """Columns added to records from tables keyed by one of their columns, in order (a key
    may be a column an earlier lookup added)."""

    def __init__(self) -> None:
        self._tables: list[tuple[str, dict[Any, dict[str, Any]], list[str]]] = []

    def set(self, key: str, table: dict[Any, dict[str, Any]], columns: list[str]) -> None:
        """Add ``columns`` of ``table[record[key]]`` (None when not found) to each record."""
        self._tables.append((key, table, columns))

    def columns(self, values: dict[str, list[Any]], n: int) -> dict[str, list[Any]]:
        """The looked-up columns of ``n`` records held as columns (``values`` must hold the
        keys; a key added by an earlier lookup is looked up from its result)."""
        out: dict[str, list[Any]] = {}
        for key, table, cols in self._tables:
            keys = out[key] if key in out else values[key]
            hits = [table.get(k) for k in keys]
            for c in cols:
                out[c] = [None if h is None else h[c] for h in hits]
        return out

    def apply(self, rec: dict[str, Any]) -> None:
        """Add the looked-up columns to ``rec`` in place."""
        for key, table, cols in self._tables:
            hit = table.get(rec[key])
            for c in cols:
                rec[c] = None if hit is None else hit[c]


class Reader:
    """Parses messages of one stream."""

    def __init__(self, stream: StreamConfig) -> None:
        self.stream = stream
        self.columns = [(c.name, c.type) for c in stream.columns]
        self._convert = [(c.name, _converter(c.type)) for c in stream.columns]
        self.lookups = Lookups()

    def parse(self, payload: bytes) -> Parsed:
        """The records of one message; never raises."""
        out = Parsed()
        try:
            raw = self._raw(payload)
        except (ValueError, UnicodeDecodeError, csv.Error) as e:
            out.rejected.append(f"not {self.stream.format}: {str(e)[:120]}")
            return out
        for obj in raw:
            try:
                out.records.append(self._record(obj))
            except (ValueError, TypeError, KeyError) as e:
                out.rejected.append(str(e)[:200])
        return out

    def _raw(self, payload: bytes) -> list[Any]:
        if self.stream.format == "json":
            data = orjson.loads(payload)
            return data if isinstance(data, list) else [data]
        rows = csv.reader(io.StringIO(payload.decode("utf-8")))
        return [dict(zip([n for n, _ in self.columns], r, strict=False)) | {"__width": len(r)}
                for r in rows if r]

    def _record(self, obj: Any) -> tuple[float, dict[str, Any]]:
        if not isinstance(obj, dict):
            raise ValueError("a record is a JSON object")
        width = obj.pop("__width", None)
        if width is not None and width != len(self.columns):
            raise ValueError(f"{width} fields, expected {len(self.columns)}")
        rec = {}
        get = obj.get
        for name, conv in self._convert:
            try:
                rec[name] = conv(get(name))
            except (ValueError, TypeError) as e:
                raise ValueError(f"column {name}: {e}") from None
        self.lookups.apply(rec)
        raw_t = get(self.stream.time_column)
        if type(raw_t) is str and type(rec[self.stream.time_column]) is float:
            raw_t = rec[self.stream.time_column]  # a number column, in CSV text
        if raw_t is None:
            raise ValueError(f"no event time ({self.stream.time_column})")
        if type(raw_t) is float or type(raw_t) is int:
            return float(raw_t), rec
        try:
            return event_time(raw_t), rec
        except (ValueError, TypeError) as e:
            raise ValueError(f"column {self.stream.time_column}: {e}") from None
