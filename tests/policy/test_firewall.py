"""The firewall's rules, one behaviour each (the full case suite comes with governance)."""

from __future__ import annotations

import pytest

from zhongshu.errors import ZhongshuError
from zhongshu.policy.identity import Caller
from zhongshu.query.service import QueryService

ALLOWED = [
    "SELECT date_trunc('hour', passed_at) AS h, count(*) FROM traffic.passages GROUP BY 1",
    "SELECT strftime(passed_at, '%H') AS h, avg(speed_kmh) FROM traffic.passages GROUP BY 1",
    "SELECT extract(hour FROM passed_at) AS h, count(DISTINCT camera_id) FROM traffic.passages "
    "GROUP BY 1",
    "SELECT camera_id, row_number() OVER (PARTITION BY camera_id ORDER BY passed_at) AS n "
    "FROM traffic.passages LIMIT 5",
    "SELECT camera_id, lag(passed_at) OVER (ORDER BY passed_at) FROM traffic.passages LIMIT 5",
    "SELECT upper(district), lower(street), length(street), coalesce(NULL, 1) "
    "FROM traffic.checkpoints",
    "SELECT round(avg(total_spaces), 1), max(total_spaces), min(total_spaces), "
    "sum(total_spaces), stddev(total_spaces) FROM parking_westlake.garages",
    "SELECT string_agg(district, ',') FROM civil.districts",
    "SELECT CASE WHEN total_spaces > 200 THEN 'big' ELSE 'small' END AS size, count(*) "
    "FROM parking_westlake.garages GROUP BY 1",
    "WITH big AS (SELECT * FROM parking_westlake.garages WHERE total_spaces > 200) "
    "SELECT count(*) FROM big",
    "SELECT district FROM traffic.checkpoints UNION SELECT district FROM civil.districts",
    "SELECT CAST(total_spaces AS DOUBLE) / 2 FROM parking_westlake.garages",
    "SELECT traffic.checkpoints.camera_id FROM traffic.checkpoints LIMIT 1",
    "SELECT * FROM traffic.checkpoints AS c(a, b) LIMIT 1",
]

REFUSED = [
    ("SELECT current_setting('threads')", "function_not_allowed"),
    ("SELECT version()", "function_not_allowed"),
    ("SELECT * FROM duckdb_extensions()", "function_not_allowed"),
    ("SELECT load_extension('x')", "function_not_allowed"),
    ("SELECT * FROM query('SELECT 1')", "function_not_allowed"),
    ("SELECT * FROM query_table('traffic.passages')", "function_not_allowed"),
    ("SELECT * FROM traffic.nope", "dataset_not_found"),
    ("SELECT * FROM passages", "dataset_not_found"),
    ("SELECT nope FROM traffic.passages", "column_not_found"),
    ("SELECT * FROM credit.scores", "dataset_not_found"),
    ("SELECT FROM WHERE", "sql_syntax"),
    ("SELECT 'unterminated", "sql_syntax"),
    ("", "sql_syntax"),
    ("SELECT * FROM traffic.passages WHERE passage_id = ?", "statement_not_allowed"),
    ("SELECT * FROM traffic.passages WHERE passage_id = $1", "statement_not_allowed"),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT * FROM r",
     "statement_not_allowed"),
    ("SELECT plate FROM traffic.passages", "column_not_granted"),
    ("SELECT count(DISTINCT plate) FROM traffic.passages", "column_not_granted"),
    ("SELECT camera_id FROM traffic.passages WHERE plate LIKE '浙A%'", "column_not_granted"),
    ("SELECT id_number FROM health.visits", "column_not_granted"),
]


@pytest.mark.parametrize("sql", ALLOWED)
def test_allowed_queries_answer(service: QueryService, sql: str) -> None:
    result = service.run(Caller(service.catalog.members["cockpit-city"]), sql, "city-operations")
    assert result.table.num_columns >= 1


@pytest.mark.parametrize(("sql", "code"), REFUSED)
def test_refused_with_code(service: QueryService, sql: str, code: str) -> None:
    with pytest.raises(ZhongshuError) as e:
        service.run(Caller(service.catalog.members["cockpit-city"]), sql, "city-operations")
    assert e.value.code == code, e.value.message


def test_owner_reads_personal_columns(service: QueryService) -> None:
    owner = Caller(service.catalog.members["traffic-police"])
    result = service.run(owner, "SELECT plate FROM traffic.passages LIMIT 3", "enforcement")
    assert all(p.startswith("浙A") for p in result.table.column("plate").to_pylist())


def test_messages_never_echo_internals(service: QueryService) -> None:
    caller = Caller(service.catalog.members["cockpit-city"])
    with pytest.raises(ZhongshuError) as e:
        service.run(caller, "SELECT camera_id + 1 FROM traffic.checkpoints", "city-operations")
    assert "src_" not in e.value.message and "__raw__" not in e.value.message
    assert "cam-" not in e.value.message


def test_same_dataset_in_several_scopes(service: QueryService) -> None:
    caller = Caller(service.catalog.members["cockpit-city"])
    sql = ("SELECT count(*) AS n FROM traffic.checkpoints WHERE segment_id IN "
           "(SELECT segment_id FROM traffic.checkpoints WHERE district = 'xihu')")
    n = service.run(caller, sql, "city-operations").table.column("n").to_pylist()[0]
    direct = service.run(caller, "SELECT count(*) AS n FROM traffic.checkpoints "
                                 "WHERE district = 'xihu'", "city-operations").table.column("n")
    assert n == direct.to_pylist()[0] > 0
    with pytest.raises(ZhongshuError) as e:
        service.run(caller, "SELECT count(*) FROM traffic.checkpoints WHERE camera_id IN "
                            "(SELECT camera_id FROM traffic.passages p WHERE p.plate = 'x')",
                    "city-operations")
    assert e.value.code == "column_not_granted"


@pytest.mark.parametrize("depth", [20, 200, 600, 1200, 5000])
def test_nesting_depth_is_answered_or_refused_cleanly(service: QueryService, depth: int) -> None:
    """However deep the parentheses, the hub answers 1 or refuses with ``sql_syntax``."""
    caller = Caller(service.catalog.members["cockpit-city"])
    sql = "SELECT " + "(" * depth + "1" + ")" * depth + " AS x"
    try:
        result = service.run(caller, sql, "city-operations")
    except ZhongshuError as e:
        assert e.code in ("sql_syntax", "query_invalid"), (e.code, e.message)
    else:
        assert result.table.to_pylist() == [{"x": 1}]


@pytest.mark.parametrize("depth", [5, 32, 33, 79, 400])
def test_nested_queries_are_answered_or_refused_cleanly(service: QueryService,
                                                        depth: int) -> None:
    """Nested subqueries cost sqlglot's renderer more stack per level than its parser: the
    firewall bounds them, so the planner never overflows (79 levels used to)."""
    caller = Caller(service.catalog.members["cockpit-city"])
    sql = "SELECT district AS a FROM civil.districts"
    for i in range(depth - 1):
        sql = f"SELECT a FROM ({sql}) AS q{i}"
    try:
        result = service.run(caller, sql + " ORDER BY a LIMIT 1", "city-operations")
    except ZhongshuError as e:
        assert depth > 32 and e.code == "sql_syntax", (e.code, e.message)
    else:
        assert depth <= 32 and result.table.num_rows == 1


def test_a_shape_the_analyser_cannot_handle_is_refused_not_a_500(service: QueryService) -> None:
    """Found by the attack grammar (on MariaDB; the firewall is the same for every path):
    `ORDER BY` positions over a `*` of a self-join made sqlglot's optimizer assert — an
    internal error. What the hub cannot analyse it refuses with a stable code."""
    who = Caller(service.catalog.members["cockpit-city"])
    sql = ("SELECT * FROM (SELECT * FROM parking_westlake.garages AS r1 LEFT JOIN "
           "parking_westlake.garages AS r2 ON r1.lat = r2.lat WHERE r2.lat IN (120.04, 1.5)) "
           "AS zq ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14 LIMIT 17")
    with pytest.raises(ZhongshuError) as e:
        service.run(who, sql, "city-operations")
    assert e.value.code == "query_invalid" and e.value.status == 400
