"""Reading messages into records: event times as ISO 8601 or epoch seconds, JSON or CSV;
what does not fit is rejected with a reason."""

from __future__ import annotations

from datetime import UTC, datetime

from zhongshu.config import StreamConfig
from zhongshu.streams.records import Reader

AT = datetime(2026, 11, 25, 8, 0, 30, tzinfo=UTC).timestamp()


def _reader(fmt: str, time_type: str) -> Reader:
    return Reader(StreamConfig.model_validate({
        "name": "s", "kind": "mqtt", "topic": "t", "format": fmt, "time_column": "at",
        "columns": [{"name": "lot_id", "type": "INTEGER"}, {"name": "at", "type": time_type},
                    {"name": "occupied", "type": "INTEGER"}]}))


def test_json_event_time_as_iso_or_epoch_seconds() -> None:
    r = _reader("json", "TIMESTAMP")
    p = r.parse(b'[{"lot_id": 1, "at": "2026-11-25T08:00:30", "occupied": 3},'
                b' {"lot_id": 2, "at": "2026-11-25T16:00:30+08:00", "occupied": 4},'
                b' {"lot_id": 3, "at": %d, "occupied": 5}]' % int(AT))
    assert p.rejected == []
    assert [t for t, _ in p.records] == [AT, AT, AT]


def test_csv_lines_with_epoch_seconds() -> None:
    r = _reader("csv", "DOUBLE")
    p = r.parse(f"1001,{AT:.3f},7\n1002,{AT + 1:.3f},x\n1003,{AT + 2:.3f}\n".encode())
    assert [(t, rec) for t, rec in p.records] == [
        (AT, {"lot_id": 1001, "at": AT, "occupied": 7})]
    assert len(p.rejected) == 2
    assert "column occupied" in p.rejected[0] and "2 fields, expected 3" in p.rejected[1]


def test_a_time_that_is_not_one_is_rejected() -> None:
    p = _reader("json", "TIMESTAMP").parse(b'{"lot_id": 1, "at": "soon", "occupied": 1}')
    assert p.records == [] and "column at" in p.rejected[0]
