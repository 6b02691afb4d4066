"""Roll-ups merge exactly: a query answered from per-part partial aggregates
(``query.rollup``) equals the same query run by DuckDB over all the rows at once."""

from __future__ import annotations

import random

import duckdb
import pyarrow as pa
import pytest
import sqlglot

from zhongshu.query.rollup import PARTIALS, decompose

QUERIES = [
    "SELECT district, count(*) AS n FROM v AS e GROUP BY district ORDER BY 1",
    "SELECT category, count(*) AS n, avg(x) AS m, min(y) AS lo, max(y) AS hi, sum(x) AS s "
    "FROM v AS e WHERE y > 3 GROUP BY category HAVING count(*) > 2 ORDER BY n DESC, 1",
    "SELECT count(*) AS n, count(x) AS nx, sum(x) AS s FROM v AS e",
    "SELECT count(*) AS n FROM v AS e WHERE category = 'none'",  # no rows: 0, not NULL
    "SELECT max(y) - min(y) AS spread, district FROM v AS e GROUP BY 2 ORDER BY 1, 2",
    "SELECT upper(category) AS c, avg(y) AS m FROM v AS e GROUP BY upper(category) "
    "ORDER BY m DESC LIMIT 2",
]


def _table(rng: random.Random, n: int) -> pa.Table:
    return pa.table({
        "district": [rng.choice(["xihu", "binjiang", "yuhang"]) for _ in range(n)],
        "category": [rng.choice(["litter", "noise", "parking"]) for _ in range(n)],
        "x": [rng.choice([None, *range(10)]) for _ in range(n)],
        "y": [rng.randint(0, 9) for _ in range(n)]})


@pytest.mark.parametrize("sql", QUERIES)
def test_partials_merged_equal_the_whole(sql: str) -> None:
    rng = random.Random(sql)
    whole = _table(rng, 300)
    parts = [whole.slice(0, 90), whole.slice(90, 0), whole.slice(90, 210)]  # one part empty
    con = duckdb.connect()
    con.register("v", whole)
    want = con.execute(sql).fetchall()
    names = [d[0] for d in con.description]
    rollup = decompose(sqlglot.parse_one(sql, read="duckdb"), names)
    assert rollup is not None
    partials = []
    for i, part in enumerate(parts):
        c = duckdb.connect()
        c.register("v", part)
        partials.append(c.execute(rollup.partial.sql("duckdb")).to_arrow_table())
        con.register(f"p{i}", partials[-1])
    union = " UNION ALL BY NAME ".join(f"SELECT * FROM p{i}" for i in range(len(parts)))
    got = con.execute(f"WITH {PARTIALS} AS ({union}) {rollup.final.sql('duckdb')}").fetchall()
    assert [d[0] for d in con.description] == names
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g == pytest.approx(w)


@pytest.mark.parametrize("sql", [
    "SELECT count(DISTINCT x) FROM v AS e",
    "SELECT count(*) FILTER (WHERE y > 1) FROM v AS e",
    "SELECT district, count(*) FROM v AS e GROUP BY ROLLUP (district)",
    "SELECT district, sum(x) OVER () FROM v AS e GROUP BY district",
    "SELECT median(x) FROM v AS e",
    "SELECT district, x, count(*) FROM v AS e GROUP BY district",
    "SELECT x FROM v AS e",
    "SELECT count(*) FROM v AS e JOIN w ON true",
    "SELECT count(*) FROM v AS e WHERE x IN (SELECT 1)",
])
def test_what_does_not_decompose_is_left_alone(sql: str) -> None:
    e = sqlglot.parse_one(sql, read="duckdb")
    assert decompose(e, [f"c{i}" for i in range(len(e.expressions))]) is None
