"""The identifiers a query names, and the wall for requests made for a person
(``policy.subjects``), over generated query shapes on the demo city.

The class: a query made for a person may read rows about that person only. Each generated
query wraps a lookup in one of several shapes (direct, CTE, subquery, renamed column, join,
expression), with a predicate that narrows to the person, to another person, to nobody, or
only seems to narrow (``OR``, ``<>``, ``IN``…). The oracle decides from the shape alone
whether every row the query could read is the person's; the hub must refuse every query the
oracle cannot vouch for, and whatever it answers must be the person's rows only (checked
against the raw SQLite file with ``sqlite3``). Independently of people, every generated
lookup names the plate it was written with, in any spelling.
"""

from __future__ import annotations

import dataclasses
import itertools
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from zhongshu.errors import NotYourData, ZhongshuError
from zhongshu.policy.identity import Caller
from zhongshu.policy.subjects import PersonScope, normalise
from zhongshu.query.service import QueryService

PURPOSE = "convenient-parking"


def _raw(demo_dir: Path, member: str, sql: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(f"file:{demo_dir / 'data' / f'{member}.sqlite'}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def plates(demo_dir: Path) -> tuple[str, str]:
    rows = _raw(demo_dir, "parking-westlake",
                "SELECT plate, count(*) FROM sessions GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 2")
    return rows[0][0], rows[1][0]


def _spell(p: str, how: int) -> str:
    return [p, f"{p[:2]}-{p[2:]}", f"{p[:2]} {p[2:]}", p.lower(), f"{p[:2]}.{p[2:]}",
            f"{p[:2]}_{p[2:]}"][how]


# predicate over column `plate` (of `s`) → does it narrow the rows to MINE alone?
def _predicates(mine: str, other: str) -> list[tuple[str, bool]]:
    return [
        (f"s.plate = '{mine}'", True),
        (f"s.plate = '{_spell(mine, 1)}'", True),
        (f"'{mine}' = s.plate", True),
        (f"s.plate = '{mine}' AND s.garage_no IS NOT NULL", True),
        (f"(s.garage_no IS NOT NULL AND (s.plate = '{mine}'))", True),
        (f"NOT (s.plate <> '{mine}')", False),
        (f"(s.plate = '{mine}' OR s.garage_no IS NULL) AND s.garage_no IS NOT NULL", False),
        (f"s.plate = '{other}'", False),
        (f"s.plate = '{mine}' OR 1 = 1", False),
        (f"s.plate = '{mine}' OR s.plate = '{other}'", False),
        (f"s.plate IN ('{mine}', '{other}')", False),
        (f"s.plate <> '{other}'", False),
        (f"s.plate = '{mine}' AND s.garage_no <> '{other}'", False),
        ("s.garage_no IS NOT NULL", False),
        ("1 = 1", False),
    ]


SHAPES = {
    "direct": ("SELECT count(*) AS n FROM parking_westlake.sessions s WHERE {p}", True),
    "cte": ("WITH s AS (SELECT * FROM parking_westlake.sessions) SELECT count(*) AS n FROM s "
            "WHERE {p}", False),
    "subquery": ("SELECT count(*) AS n FROM (SELECT plate, garage_no FROM "
                 "parking_westlake.sessions) s WHERE {p}", False),
    "exists": ("SELECT count(*) AS n FROM parking_westlake.sessions s WHERE {p} AND EXISTS "
               "(SELECT 1 FROM parking_westlake.sessions t WHERE t.garage_no = s.garage_no)",
               False),
    "join": ("SELECT count(*) AS n FROM parking_westlake.sessions s JOIN "
             "parking_qiantang.tickets t ON s.plate = t.car_plate WHERE {p}", False),
    "scalar": ("SELECT (SELECT count(*) FROM parking_westlake.sessions s WHERE {p}) AS n", True),
    "union": ("SELECT count(*) AS n FROM (SELECT plate FROM parking_westlake.sessions s WHERE "
              "{p} UNION ALL SELECT plate FROM parking_westlake.sessions) u", False),
    "narrowed-cte": ("WITH m AS (SELECT * FROM parking_westlake.sessions s WHERE {p}) "
                     "SELECT count(*) AS n FROM m", True),
}


def _scope(service: QueryService, plate: str) -> PersonScope:
    return PersonScope("t" * 64, frozenset({("plate", plate), ("id_number", "1" * 18)}))


def test_a_person_reads_only_their_rows_whatever_the_shape(
        service: QueryService, demo_dir: Path, plates: tuple[str, str]) -> None:
    mine, other = plates
    app = Caller(service.catalog.members["app-parking"])
    me = dataclasses.replace(app, on_behalf_of="~person", person=_scope(service, mine))
    # the person's rows as the raw file has them (a looked-up plate is normalised before it
    # is compared, however it was written: the grant's mask says `normalise = "plate"`)
    truth = int(_raw(demo_dir, "parking-westlake",
                     f"SELECT count(*) FROM sessions WHERE plate = '{mine}'")[0][0])

    answered = refused = 0
    for (_shape, (sql, shape_ok)), (pred, pred_ok) in itertools.product(
            SHAPES.items(), _predicates(mine, other)):
        q = sql.format(p=pred)
        try:
            rows = service.run(me, q, PURPOSE).table.to_pylist()
        except NotYourData:
            refused += 1
            continue
        except ZhongshuError as e:  # refused for another reason (a join not granted…)
            assert e.code != "ok", q
            refused += 1
            continue
        answered += 1
        assert shape_ok and pred_ok, f"answered for a person, not narrowed to them: {q}"
        assert rows == [{"n": truth}], q
        # the same query for the scenario itself (no person) is not narrowed by the wall
        assert service.run(app, q, PURPOSE).table.to_pylist() == rows
    assert answered >= 4 and refused > answered


def test_every_spelling_of_a_looked_up_plate_is_named(service: QueryService,
                                                      plates: tuple[str, str]) -> None:
    mine, _ = plates
    app = Caller(service.catalog.members["app-parking"])
    for how, (shape, (sql, _)) in itertools.product(range(6), SHAPES.items()):
        q = sql.format(p=f"s.plate = '{_spell(mine, how)}'")
        try:
            result = service.run(app, q, PURPOSE)
        except ZhongshuError:
            continue  # refused: the refusal is tagged from the text (handlers)
        assert ("plate", normalise("plate", mine)) in result.identifiers, (shape, q)


@pytest.mark.parametrize("text,kind,normal", [
    ("浙A-12345", "plate", "浙A12345"), ("浙a 12345", "plate", "浙A12345"),
    ("浙A·12345", "plate", "浙A12345"), ("浙A.12345", "plate", "浙A12345"),
    ("浙A_12345", "plate", "浙A12345"),
    ("33010619800101123x", "id_number", "33010619800101123X"),
    ("3301061980 0101123X", "id_number", "33010619800101123X"),
    ("浙A1234", "plate", None), ("12345", "id_number", None), (None, "plate", None),
])
def test_normal_forms(text: Any, kind: str, normal: str | None) -> None:
    assert normalise(kind, text) == normal
