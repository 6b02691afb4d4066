"""The pairs stage: consecutive sightings of a plate at a segment's two cameras make a trip;
outliers (a cloned plate, a stop on the way) and out-of-order sightings are left out."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from zhongshu.config import PairsConfig, StreamConfig
from zhongshu.streams.pairs import Pairer

CAMERAS = {"a1": "s1", "b1": "s1", "a2": "s2", "b2": "s2"}


def _pairer() -> Pairer:
    p = Pairer(PairsConfig(name="trips", key="plate", same="segment_id", differ="camera_id",
                           max_gap_s=1800, reference="free_flow_s"), "at")
    p.lookups.set("segment_id", {"s1": {"free_flow_s": 60.0}, "s2": {"free_flow_s": 100.0}},
                  ["free_flow_s"])
    return p


def _rec(t: float, plate: str, cam: str) -> tuple[float, dict[str, Any]]:
    return t, {"plate": plate, "camera_id": cam, "segment_id": CAMERAS[cam], "at": t}


def _trips(out: list[tuple[float, dict[str, Any]]]) -> list[tuple[str, str, float]]:
    return [(r["plate"], r["segment_id"], r["duration_s"]) for _, r in out]


def test_consecutive_sightings_at_a_segments_two_cameras_make_a_trip() -> None:
    p = _pairer()
    out = p.pair([_rec(0, "X", "a1"), _rec(5, "Y", "a2"), _rec(70, "X", "b1"),
                  _rec(80, "X", "a2"), _rec(300, "X", "b2"),   # s2 in 220 s
                  _rec(400, "Y", "b2")])                          # s2 in 395 s
    assert _trips(out) == [("X", "s1", 70.0), ("X", "s2", 220.0), ("Y", "s2", 395.0)]
    assert out[0][1]["started_at"] == 0 and out[0][1]["free_flow_s"] == 60.0
    assert out[0][0] == 70  # a trip's event time is its second sighting


def test_outliers_and_broken_sequences_are_left_out() -> None:
    p = _pairer()
    out = p.pair([
        _rec(0, "A", "a1"), _rec(20, "A", "b1"),         # 20 s < 0.5 × 60: a cloned plate
        _rec(100, "B", "a1"), _rec(800, "B", "b1"),      # 700 s > 10 × 60: stopped
        _rec(1000, "C", "a1"), _rec(1010, "C", "a2"), _rec(1100, "C", "b1"),  # not consecutive
        _rec(2000, "D", "a1"), _rec(2100, "D", "a1"),    # the same camera twice
        _rec(3000, "E", "a1"), _rec(5000, "E", "b1"),    # more than 30 minutes
        _rec(6000, "F", "a1"), _rec(6090, "F", "b1"),    # a trip
    ])
    assert _trips(out) == [("F", "s1", 90.0)]
    assert (p.pairs, p.outliers) == (1, 2)


def test_an_out_of_order_sighting_neither_pairs_nor_replaces_the_last() -> None:
    p = _pairer()
    out = p.pair([_rec(0, "X", "a1"), _rec(100, "X", "a2"), _rec(50, "X", "b1"),
                  _rec(250, "X", "b2")])
    assert _trips(out) == [("X", "s2", 150.0)]
    assert p.out_of_order == 1


def test_waiting_sightings_survive_a_restart() -> None:
    p = _pairer()
    p.pair([_rec(0, "X", "a1"), _rec(10, "Y", "a1")])
    rows, horizon = p.take_changes()
    assert sorted(orjson.loads(k) for k, _, _ in rows) == ["X", "Y"] and horizon is None
    assert p.take_changes() == ([], None)  # taken once
    again = _pairer()
    again.restore([(k, s) for k, _, s in rows])
    assert _trips(again.pair([_rec(90, "X", "b1")])) == [("X", "s1", 90.0)]


def test_pairs_must_name_the_streams_columns() -> None:
    with pytest.raises(ValueError, match="same `segment` is not one of the stream's columns"):
        StreamConfig.model_validate({
            "name": "s", "kind": "mqtt", "topic": "t", "time_column": "at",
            "columns": [{"name": "at", "type": "TIMESTAMP"}, {"name": "plate", "type": "VARCHAR"},
                        {"name": "camera_id", "type": "VARCHAR"}],
            "pairs": [{"name": "trips", "key": "plate", "same": "segment", "differ": "camera_id"}]})
