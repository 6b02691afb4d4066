"""The functions a hub query may call, and how a sqlglot node names the function it calls."""

from __future__ import annotations

from sqlglot import exp

# Functions a query may call, by the name DuckDB knows them under. Nothing that reads files,
# settings, secrets, extensions, the environment or the catalog of the engine.
ALLOWED_FUNCTIONS = frozenset("""
count sum avg min max median mode stddev stddev_samp stddev_pop variance var_samp var_pop
quantile quantile_cont quantile_disc approx_count_distinct approx_quantile string_agg
group_concat list array_agg bool_and bool_or bit_and bit_or first last any_value arg_min
arg_max argmin argmax count_if countif corr covar_pop covar_samp regr_slope regr_intercept
row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value
nth_value
abs ceil ceiling floor round trunc sign sqrt pow power exp ln log log2 log10 mod greatest
least pi degrees radians sin cos tan asin acos atan atan2 cot
coalesce nullif ifnull if iif
lower upper length len char_length strlen concat concat_ws substr substring left right
trim ltrim rtrim lpad rpad replace reverse position strpos instr contains
starts_with ends_with prefix suffix split_part regexp_matches regexp_replace
regexp_extract lcase ucase md5 sha256 hash format printf ascii chr unicode
like_escape ilike_escape
date_trunc datetrunc date_part datepart extract year month day hour minute second week
dayofweek dayofyear isodow quarter epoch epoch_ms strftime strptime make_date make_time
make_timestamp date_diff datediff date_sub date_add age time_bucket last_day
monthname dayname to_timestamp current_date today
try_cast struct_pack list_value unnest
""".split())

# sqlglot models operators and syntax as functions too; these are not calls
_NOT_CALLS = (exp.Connector, exp.Binary, exp.Predicate, exp.Unary, exp.Case, exp.Cast,
              exp.TryCast, exp.If, exp.Coalesce)


def function_name(node: exp.Expr) -> str | None:
    """The lower-case name of the function ``node`` calls, or None if ``node`` is no call.

    sqlglot also models AND, OR, comparisons, CASE and CAST as functions: those are syntax,
    not calls, and give None. A function sqlglot does not know keeps the name it was written
    with.

    >>> import sqlglot
    >>> [function_name(sqlglot.parse_one(s)) for s in ("abs(x)", "my_udf(x)", "a AND b")]
    ['abs', 'my_udf', None]
    >>> function_name(sqlglot.parse_one("CAST(x AS INT)")) is None
    True
    """
    if not isinstance(node, exp.Func) or isinstance(node, _NOT_CALLS):
        return None
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    return node.sql_name().lower()

