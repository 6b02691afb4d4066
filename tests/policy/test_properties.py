"""Random queries over granted datasets, each answer checked against an oracle computed
without the rewriter: plain Python over the raw rows (read with sqlite3) and the grant.

Properties: no raw personal value leaves, no row outside the row scope appears, and no row
inside it goes missing.
"""

from __future__ import annotations

import operator
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zhongshu.policy.identity import Caller
from zhongshu.query.service import QueryService

OPS: dict[str, Callable[[Any, Any], bool]] = {"=": operator.eq, "<>": operator.ne,
                                              "<": operator.lt, ">": operator.gt,
                                              "<=": operator.le, ">=": operator.ge}
CHECKPOINT_COLS = ["camera_id", "segment_id", "district", "street", "lon", "lat", "direction"]
SESSION_COLS = ["session_id", "garage_no", "plate", "fee_cents"]


class Raw(dict[str, list[dict[str, Any]]]):
    def __repr__(self) -> str:  # Hypothesis prints fixtures of failing examples
        return f"<raw rows: {', '.join(f'{k} {len(v)}' for k, v in self.items())}>"


@pytest.fixture(scope="module")
def raw(demo_dir: Path) -> dict[str, list[dict[str, Any]]]:
    def rows(member: str, sql: str) -> list[dict[str, Any]]:
        con = sqlite3.connect(f"file:{demo_dir / 'data' / f'{member}.sqlite'}?mode=ro",
                              uri=True)
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute(sql)]
        finally:
            con.close()

    return Raw(checkpoints=rows("traffic-police", "SELECT * FROM checkpoints"),
               sessions=rows("parking-westlake", "SELECT * FROM sessions"),
               garages=rows("parking-westlake", "SELECT * FROM garages"))


def _lit(v: Any) -> str:
    return f"'{v}'" if isinstance(v, str) else repr(v)


# Strategies draw positions, not values, so they never depend on the data (Hypothesis
# replays them); the test turns a position into a value of the raw rows.
columns = st.lists(st.integers(0, 6), min_size=1, max_size=4, unique=True)
predicates = st.none() | st.tuples(st.integers(0, 6), st.sampled_from(list(OPS)),
                                   st.integers(0, 10_000))


@given(cols=columns, where=predicates)
@settings(max_examples=60, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_row_scope_is_exact(service: QueryService, raw: dict[str, list[dict[str, Any]]],
                            cols: list[int], where: tuple[int, str, int] | None) -> None:
    names = [CHECKPOINT_COLS[c] for c in cols]
    rows = raw["checkpoints"]
    sql = f"SELECT {', '.join(names)} FROM traffic.checkpoints"
    cond = None
    if where is not None:
        col, op = CHECKPOINT_COLS[where[0]], where[1]
        value = rows[where[2] % len(rows)][col]
        sql += f" WHERE {col} {op} {_lit(value)}"
        cond = (col, op, value)
    got = service.run(Caller(service.catalog.members["cockpit-xihu"]), sql,
                      "district-operations").table.to_pylist()
    want = [r for r in rows if r["district"] == "xihu"
            and (cond is None or OPS[cond[1]](r[cond[0]], cond[2]))]
    assert sorted((tuple(r[c] for c in names) for r in got), key=repr) == \
        sorted((tuple(r[c] for c in names) for r in want), key=repr), sql


@given(cols=st.lists(st.integers(0, 3), min_size=1, max_size=4, unique=True),
       kind=st.sampled_from(["none", "plate", "unknown-plate", "garage", "fee"]),
       pick=st.integers(0, 10_000), op=st.sampled_from(list(OPS)),
       fee=st.integers(0, 3000))
@settings(max_examples=60, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_pseudonyms_never_leak_and_lookups_are_exact(
        service: QueryService, raw: dict[str, list[dict[str, Any]]], cols: list[int],
        kind: str, pick: int, op: str, fee: int) -> None:
    sessions = raw["sessions"]
    names = [SESSION_COLS[c] for c in cols]
    sql = f"SELECT {', '.join(names)} FROM parking_westlake.sessions"
    keep: Callable[[dict[str, Any]], bool] = lambda r: True  # noqa: E731
    if kind in ("plate", "unknown-plate"):
        plate = sessions[pick % len(sessions)]["plate"] if kind == "plate" else "浙A00000"
        sql += f" WHERE plate = '{plate}'"
        keep = lambda r: r["plate"] == plate  # noqa: E731
    elif kind == "garage":
        g = raw["garages"][pick % len(raw["garages"])]["garage_no"]
        sql += f" WHERE garage_no {op} '{g}'"
        keep = lambda r: OPS[op](r["garage_no"], g)  # noqa: E731
    elif kind == "fee":
        sql += f" WHERE fee_cents >= {fee}"
        keep = lambda r: r["fee_cents"] is not None and r["fee_cents"] >= fee  # noqa: E731
    got = service.run(Caller(service.catalog.members["app-parking"]), sql,
                      "convenient-parking").table.to_pylist()
    want = [r for r in sessions if keep(r)]
    assert len(got) == len(want), sql
    clear = {r["plate"] for r in sessions}
    if "plate" in names:
        assert not clear & {r["plate"] for r in got}
    plain = [c for c in names if c != "plate"]
    assert sorted((tuple(r[c] for c in plain) for r in got), key=repr) == \
        sorted((tuple(r[c] for c in plain) for r in want), key=repr), sql
