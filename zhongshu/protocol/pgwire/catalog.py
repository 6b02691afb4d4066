"""The emulated catalog of one wire session: ``pg_catalog`` and ``information_schema`` as
the caller may see them, never the engine's.

What a caller sees is what it may read for the session's purpose (the database name): each
dataset with at least one column granted for that purpose appears as ``schema.table``
(``traffic.passages``) with the granted columns only, typed as the answer would type them
(masked columns as text); a dataset the caller owns appears whole. Nothing else exists — an
unlisted dataset without a grant, a listed one without a grant for this purpose, the
sources, the engine. ``outsider`` sees an empty catalog.

The emulation is a private in-memory DuckDB per session holding only these names, with
PostgreSQL-shaped catalog tables (``pg_class``, ``pg_attribute``, ``pg_type``…) and
``information_schema`` views over them. A client's catalog query is rewritten with sqlglot
(PostgreSQL → DuckDB): every relation must be one of the emulated ones (anything else is
``42P01``), the functions PostgreSQL clients call (``format_type``, ``pg_table_is_visible``,
``current_setting``, ``version``…) are answered here, and DuckDB's own introspection
(``duckdb_*``, pragmas, settings, file readers) is refused. The DuckDB has no external access
and a locked configuration, and holds no data: at worst a query there learns the names above.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp

from zhongshu.catalog.catalog import Catalog
from zhongshu.errors import (
    DatasetNotFound,
    FunctionNotAllowed,
    QueryTimeout,
    SqlSyntax,
    ZhongshuError,
)
from zhongshu.policy.grants import Grants
from zhongshu.policy.identity import Caller
from zhongshu.protocol.pgwire import types as t

PG_VERSION = "16.0"
CATALOG_SCHEMAS = frozenset({"pg_catalog", "information_schema"})
NS_PG_CATALOG, NS_INFO, NS_PUBLIC = 11, 13000, 2200
FIRST_OID = 16384
CATALOG_ROW_CAP = 10_000
TIME_LIMIT_S = 5.0  # a catalog query is small: at most this long (and the hub's own limit)
OWNER_OID = 10

#: emulated pg_catalog relations: name → column definitions (DuckDB types)
PG_TABLES: dict[str, str] = {
    "pg_namespace": "oid INTEGER, nspname VARCHAR, nspowner INTEGER, nspacl VARCHAR[]",
    "pg_class": (
        "oid INTEGER, relname VARCHAR, relnamespace INTEGER, reltype INTEGER, "
        "reloftype INTEGER, relowner INTEGER, relam INTEGER, relfilenode INTEGER, "
        "reltablespace INTEGER, relpages INTEGER, reltuples DOUBLE, relallvisible INTEGER, "
        "reltoastrelid INTEGER, relhasindex BOOLEAN, relisshared BOOLEAN, "
        "relpersistence VARCHAR, relkind VARCHAR, relnatts SMALLINT, relchecks SMALLINT, "
        "relhasrules BOOLEAN, relhastriggers BOOLEAN, relhassubclass BOOLEAN, "
        "relrowsecurity BOOLEAN, relforcerowsecurity BOOLEAN, relispopulated BOOLEAN, "
        "relreplident VARCHAR, relispartition BOOLEAN, relrewrite INTEGER, "
        "relfrozenxid INTEGER, relminmxid INTEGER, relacl VARCHAR[], reloptions VARCHAR[], "
        "relpartbound VARCHAR"),
    "pg_attribute": (
        "attrelid INTEGER, attname VARCHAR, atttypid INTEGER, attstattarget INTEGER, "
        "attlen SMALLINT, attnum SMALLINT, attndims INTEGER, attcacheoff INTEGER, "
        "atttypmod INTEGER, attbyval BOOLEAN, attalign VARCHAR, attstorage VARCHAR, "
        "attcompression VARCHAR, attnotnull BOOLEAN, atthasdef BOOLEAN, "
        "atthasmissing BOOLEAN, attidentity VARCHAR, attgenerated VARCHAR, "
        "attisdropped BOOLEAN, attislocal BOOLEAN, attinhcount INTEGER, "
        "attcollation INTEGER, attacl VARCHAR[], attoptions VARCHAR[], "
        "attfdwoptions VARCHAR[], attmissingval VARCHAR"),
    "pg_type": (
        "oid INTEGER, typname VARCHAR, typnamespace INTEGER, typowner INTEGER, "
        "typlen SMALLINT, typbyval BOOLEAN, typtype VARCHAR, typcategory VARCHAR, "
        "typispreferred BOOLEAN, typisdefined BOOLEAN, typdelim VARCHAR, typrelid INTEGER, "
        "typelem INTEGER, typarray INTEGER, typinput VARCHAR, typoutput VARCHAR, "
        "typreceive VARCHAR, typsend VARCHAR, typmodin VARCHAR, typmodout VARCHAR, "
        "typanalyze VARCHAR, typalign VARCHAR, typstorage VARCHAR, typnotnull BOOLEAN, "
        "typbasetype INTEGER, typtypmod INTEGER, typndims INTEGER, typcollation INTEGER, "
        "typdefaultbin VARCHAR, typdefault VARCHAR, typacl VARCHAR[]"),
    "pg_database": (
        "oid INTEGER, datname VARCHAR, datdba INTEGER, encoding INTEGER, "
        "datlocprovider VARCHAR, datistemplate BOOLEAN, datallowconn BOOLEAN, "
        "datconnlimit INTEGER, datfrozenxid INTEGER, datminmxid INTEGER, "
        "dattablespace INTEGER, datcollate VARCHAR, datctype VARCHAR, datacl VARCHAR[]"),
    "pg_roles": (
        "oid INTEGER, rolname VARCHAR, rolsuper BOOLEAN, rolinherit BOOLEAN, "
        "rolcreaterole BOOLEAN, rolcreatedb BOOLEAN, rolcanlogin BOOLEAN, "
        "rolreplication BOOLEAN, rolconnlimit INTEGER, rolpassword VARCHAR, "
        "rolvaliduntil TIMESTAMP, rolbypassrls BOOLEAN, rolconfig VARCHAR[]"),
    "pg_user": ("usename VARCHAR, usesysid INTEGER, usecreatedb BOOLEAN, usesuper BOOLEAN, "
                "userepl BOOLEAN, usebypassrls BOOLEAN, passwd VARCHAR, valuntil TIMESTAMP, "
                "useconfig VARCHAR[]"),
    "pg_am": "oid INTEGER, amname VARCHAR, amhandler VARCHAR, amtype VARCHAR",
    "pg_description": "objoid INTEGER, classoid INTEGER, objsubid INTEGER, description VARCHAR",
    "pg_attrdef": "oid INTEGER, adrelid INTEGER, adnum SMALLINT, adbin VARCHAR",
    "pg_index": (
        "indexrelid INTEGER, indrelid INTEGER, indnatts SMALLINT, indnkeyatts SMALLINT, "
        "indisunique BOOLEAN, indnullsnotdistinct BOOLEAN, indisprimary BOOLEAN, "
        "indisexclusion BOOLEAN, indimmediate BOOLEAN, indisclustered BOOLEAN, "
        "indisvalid BOOLEAN, indcheckxmin BOOLEAN, indisready BOOLEAN, indislive BOOLEAN, "
        "indisreplident BOOLEAN, indkey SMALLINT[], indcollation INTEGER[], "
        "indclass INTEGER[], indoption SMALLINT[], indexprs VARCHAR, indpred VARCHAR"),
    "pg_constraint": (
        "oid INTEGER, conname VARCHAR, connamespace INTEGER, contype VARCHAR, "
        "condeferrable BOOLEAN, condeferred BOOLEAN, convalidated BOOLEAN, conrelid INTEGER, "
        "contypid INTEGER, conindid INTEGER, conparentid INTEGER, confrelid INTEGER, "
        "confupdtype VARCHAR, confdeltype VARCHAR, confmatchtype VARCHAR, "
        "conislocal BOOLEAN, coninhcount INTEGER, connoinherit BOOLEAN, conkey SMALLINT[], "
        "confkey SMALLINT[], conbin VARCHAR"),
    "pg_inherits": "inhrelid INTEGER, inhparent INTEGER, inhseqno INTEGER, "
                   "inhdetachpending BOOLEAN",
    "pg_collation": "oid INTEGER, collname VARCHAR, collnamespace INTEGER, collowner INTEGER",
    "pg_proc": ("oid INTEGER, proname VARCHAR, pronamespace INTEGER, proowner INTEGER, "
                "prokind VARCHAR, prorettype INTEGER, proargtypes INTEGER[], "
                "proretset BOOLEAN, prosrc VARCHAR"),
    "pg_tablespace": "oid INTEGER, spcname VARCHAR, spcowner INTEGER",
    "pg_extension": "oid INTEGER, extname VARCHAR, extowner INTEGER, extnamespace INTEGER, "
                    "extversion VARCHAR",
    "pg_enum": "oid INTEGER, enumtypid INTEGER, enumsortorder DOUBLE, enumlabel VARCHAR",
    "pg_trigger": "oid INTEGER, tgrelid INTEGER, tgparentid INTEGER, tgname VARCHAR, "
                  "tgfoid INTEGER, tgtype SMALLINT, tgenabled VARCHAR, tgisinternal BOOLEAN",
    "pg_policy": "oid INTEGER, polname VARCHAR, polrelid INTEGER, polcmd VARCHAR, "
                 "polpermissive BOOLEAN, polroles INTEGER[], polqual VARCHAR, "
                 "polwithcheck VARCHAR",
    "pg_rewrite": "oid INTEGER, rulename VARCHAR, ev_class INTEGER, ev_type VARCHAR",
    "pg_depend": "classid INTEGER, objid INTEGER, objsubid INTEGER, refclassid INTEGER, "
                 "refobjid INTEGER, refobjsubid INTEGER, deptype VARCHAR",
    "pg_statistic_ext": "oid INTEGER, stxrelid INTEGER, stxname VARCHAR, "
                        "stxnamespace INTEGER, stxowner INTEGER, stxstattarget INTEGER, "
                        "stxkeys SMALLINT[], stxkind VARCHAR[], stxexprs VARCHAR",
    "pg_publication": "oid INTEGER, pubname VARCHAR, puballtables BOOLEAN, "
                      "pubinsert BOOLEAN, pubupdate BOOLEAN, pubdelete BOOLEAN, "
                      "pubtruncate BOOLEAN, pubviaroot BOOLEAN",
    "pg_publication_rel": "oid INTEGER, prpubid INTEGER, prrelid INTEGER, prqual VARCHAR, "
                          "prattrs SMALLINT[]",
    "pg_publication_namespace": "oid INTEGER, pnpubid INTEGER, pnnspid INTEGER",
    "pg_partitioned_table": "partrelid INTEGER, partstrat VARCHAR, partnatts SMALLINT",
    "pg_foreign_table": "ftrelid INTEGER, ftserver INTEGER, ftoptions VARCHAR[]",
    "pg_sequence": "seqrelid INTEGER, seqtypid INTEGER, seqstart BIGINT, seqincrement BIGINT, "
                   "seqmax BIGINT, seqmin BIGINT, seqcache BIGINT, seqcycle BOOLEAN",
    "pg_event_trigger": "oid INTEGER, evtname VARCHAR",
    "pg_settings": "name VARCHAR, setting VARCHAR, unit VARCHAR, category VARCHAR, "
                   "short_desc VARCHAR, context VARCHAR, vartype VARCHAR, source VARCHAR",
    "pg_tables": "schemaname VARCHAR, tablename VARCHAR, tableowner VARCHAR, "
                 "tablespace VARCHAR, hasindexes BOOLEAN, hasrules BOOLEAN, "
                 "hastriggers BOOLEAN, rowsecurity BOOLEAN",
    "pg_views": "schemaname VARCHAR, viewname VARCHAR, viewowner VARCHAR, definition VARCHAR",
    "pg_matviews": "schemaname VARCHAR, matviewname VARCHAR, matviewowner VARCHAR, "
                   "tablespace VARCHAR, hasindexes BOOLEAN, ispopulated BOOLEAN, "
                   "definition VARCHAR",
    "pg_indexes": "schemaname VARCHAR, tablename VARCHAR, indexname VARCHAR, "
                  "tablespace VARCHAR, indexdef VARCHAR",
    "pg_stat_activity": "datid INTEGER, datname VARCHAR, pid INTEGER, usename VARCHAR, "
                        "application_name VARCHAR, state VARCHAR, query VARCHAR",
}

#: relations that never have rows here (the hub has no such objects)
ALWAYS_EMPTY = frozenset({
    "pg_policy", "pg_publication", "pg_publication_rel", "pg_publication_namespace",
    "pg_inherits", "pg_trigger", "pg_statistic_ext", "pg_rewrite", "pg_partitioned_table",
    "pg_foreign_table", "pg_event_trigger", "pg_index", "pg_constraint", "pg_attrdef",
    "pg_depend", "pg_enum", "pg_sequence", "pg_extension", "pg_proc"})

#: emulated information_schema views (over the emulated pg tables)
INFO_VIEWS: dict[str, str] = {
    "schemata": """SELECT zs_db() AS catalog_name, nspname AS schema_name,
        'hub' AS schema_owner, NULL::VARCHAR AS default_character_set_catalog,
        NULL::VARCHAR AS default_character_set_schema,
        NULL::VARCHAR AS default_character_set_name, NULL::VARCHAR AS sql_path
        FROM pgc.pg_namespace""",
    "tables": """SELECT zs_db() AS table_catalog, n.nspname AS table_schema,
        c.relname AS table_name, CASE WHEN n.nspname IN ('pg_catalog', 'information_schema')
        THEN 'VIEW' ELSE 'BASE TABLE' END AS table_type,
        NULL::VARCHAR AS self_referencing_column_name, NULL::VARCHAR AS reference_generation,
        NULL::VARCHAR AS user_defined_type_catalog, NULL::VARCHAR AS user_defined_type_schema,
        NULL::VARCHAR AS user_defined_type_name, 'NO' AS is_insertable_into, 'NO' AS is_typed,
        NULL::VARCHAR AS commit_action
        FROM pgc.pg_class c JOIN pgc.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'v')""",
    "columns": """SELECT zs_db() AS table_catalog, n.nspname AS table_schema,
        c.relname AS table_name, a.attname AS column_name, a.attnum::INTEGER AS
        ordinal_position, NULL::VARCHAR AS column_default, 'YES' AS is_nullable,
        zs_info_type(a.atttypid) AS data_type, NULL::INTEGER AS character_maximum_length,
        NULL::INTEGER AS character_octet_length,
        CASE a.atttypid WHEN 21 THEN 16 WHEN 23 THEN 32 WHEN 20 THEN 64 WHEN 700 THEN 24
             WHEN 701 THEN 53 WHEN 1700 THEN zs_typmod_precision(a.atttypmod) END
             AS numeric_precision,
        CASE WHEN a.atttypid IN (21, 23, 20, 700, 701) THEN 2
             WHEN a.atttypid = 1700 THEN 10 END AS numeric_precision_radix,
        CASE WHEN a.atttypid IN (21, 23, 20) THEN 0
             WHEN a.atttypid = 1700 THEN zs_typmod_scale(a.atttypmod) END AS numeric_scale,
        CASE WHEN a.atttypid IN (1083, 1114, 1184) THEN 6 WHEN a.atttypid = 1082 THEN 0 END
             AS datetime_precision,
        NULL::VARCHAR AS interval_type, NULL::INTEGER AS interval_precision,
        NULL::VARCHAR AS character_set_catalog, NULL::VARCHAR AS character_set_schema,
        NULL::VARCHAR AS character_set_name, NULL::VARCHAR AS collation_catalog,
        NULL::VARCHAR AS collation_schema, NULL::VARCHAR AS collation_name,
        NULL::VARCHAR AS domain_catalog, NULL::VARCHAR AS domain_schema,
        NULL::VARCHAR AS domain_name, zs_db() AS udt_catalog,
        'pg_catalog' AS udt_schema, t.typname AS udt_name, NULL::VARCHAR AS scope_catalog,
        NULL::VARCHAR AS scope_schema, NULL::VARCHAR AS scope_name,
        NULL::INTEGER AS maximum_cardinality, a.attnum::VARCHAR AS dtd_identifier,
        'NO' AS is_self_referencing, 'NO' AS is_identity, NULL::VARCHAR AS identity_generation,
        'NEVER' AS is_generated, NULL::VARCHAR AS generation_expression, 'NO' AS is_updatable
        FROM pgc.pg_attribute a JOIN pgc.pg_class c ON c.oid = a.attrelid
        JOIN pgc.pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pgc.pg_type t ON t.oid = a.atttypid
        WHERE a.attnum > 0 AND c.relkind = 'r'""",
    "views": "SELECT NULL::VARCHAR AS table_catalog, NULL::VARCHAR AS table_schema, "
             "NULL::VARCHAR AS table_name, NULL::VARCHAR AS view_definition WHERE false",
    "table_constraints": "SELECT NULL::VARCHAR AS constraint_catalog, NULL::VARCHAR AS "
                         "constraint_schema, NULL::VARCHAR AS constraint_name, NULL::VARCHAR "
                         "AS table_catalog, NULL::VARCHAR AS table_schema, NULL::VARCHAR AS "
                         "table_name, NULL::VARCHAR AS constraint_type WHERE false",
    "key_column_usage": "SELECT NULL::VARCHAR AS constraint_catalog, NULL::VARCHAR AS "
                        "constraint_schema, NULL::VARCHAR AS constraint_name, NULL::VARCHAR "
                        "AS table_catalog, NULL::VARCHAR AS table_schema, NULL::VARCHAR AS "
                        "table_name, NULL::VARCHAR AS column_name, NULL::INTEGER AS "
                        "ordinal_position WHERE false",
    "routines": "SELECT NULL::VARCHAR AS routine_catalog, NULL::VARCHAR AS routine_schema, "
                "NULL::VARCHAR AS routine_name, NULL::VARCHAR AS routine_type WHERE false",
}

#: functions a catalog query may call, besides DuckDB's ordinary scalar functions (the
#: ``zs_`` macros are defined per session below)
_REFUSED_PREFIXES = ("duckdb_", "pragma", "read_", "glob", "getenv", "sniff_", "parquet_",
                     "sqlite_", "postgres_", "mysql_", "iceberg_", "delta_", "json_execute",
                     "query", "which_secret", "enable_", "disable_", "install", "load",
                     "checkpoint", "force_checkpoint", "current_setting", "set_config",
                     "from_", "system", "test_", "arrow_", "ducklake", "summary", "icu_",
                     "repeat_row", "range", "pg_sleep")
_TABLE_FUNCTIONS = frozenset({"unnest", "generate_series", "exploding_generate_series",
                              "generate_subscripts", "explode", "pg_get_keywords"})
_CATALOG_TABLES = frozenset({"pg_get_keywords"})  # table functions only the catalog has
# PostgreSQL's reserved key words (its manual, appendix C): what pg_get_keywords() lists, for
# the editors that highlight SQL with it (DBeaver asks at connect)
_RESERVED = """all analyse analyze and any array as asc asymmetric both case cast check collate
column constraint create current_catalog current_date current_role current_time
current_timestamp current_user default deferrable desc distinct do else end except false
fetch for foreign from grant group having in initially intersect into lateral leading limit
localtime localtimestamp not null offset on only or order placing primary references
returning select session_user some symmetric table then to trailing true union unique user
using variadic when where window with""".split()


@dataclass(frozen=True)
class Relation:
    """One dataset as the caller sees it: schema, table, (column, OID, typmod) each."""

    schema: str
    table: str
    columns: tuple[tuple[str, int, int], ...]
    description: str = ""
    column_descriptions: tuple[str, ...] = ()


def visible_relations(catalog: Catalog, grants: Grants, caller: Caller, purpose: str
                      ) -> list[Relation]:
    """What ``caller`` may read for ``purpose``: granted columns only, typed as answered."""
    out = []
    for ds in sorted(catalog.datasets.values(), key=lambda d: d.name):
        if not grants.visible(caller, ds) or "." not in ds.name:
            continue
        try:
            access = grants.decide(caller, ds, purpose)
        except ZhongshuError:
            continue  # not for this purpose, or no grant: it does not exist here
        cols = []
        descs = []
        for c in ds.columns:
            if c.name not in access.columns:
                continue
            mask = access.masking.get(c.name)
            if mask is not None and mask.kind == "aggregate_only":
                continue  # only inside aggregates: not a column one can select
            oid = t.TEXT if mask is not None else t.oid_of_name(c.type)
            cols.append((c.name, oid, _typmod(c.type) if oid == t.NUMERIC else -1))
            descs.append(c.description)
        if cols:
            schema, _, table = ds.name.partition(".")
            out.append(Relation(schema, table, tuple(cols), ds.config.description or
                                ds.config.title or "", tuple(descs)))
    return out


def _typmod(sql_type: str) -> int:
    """``DECIMAL(p,s)`` → PostgreSQL's numeric typmod ((p << 16 | s) + 4); -1 without."""
    inside = sql_type.partition("(")[2].rstrip(") ")
    if not inside:
        return -1
    p, _, s = inside.partition(",")
    try:
        return ((int(p) << 16) | int(s or 0)) + 4
    except ValueError:
        return -1


_BUILTIN_TYPES = [t.BOOL, t.BYTEA, t.CHAR, t.NAME, t.INT8, t.INT2, t.INT4, t.TEXT, t.OID,
                  t.JSON, t.FLOAT4, t.FLOAT8, t.UNKNOWN, t.VARCHAR, t.DATE, t.TIME,
                  t.TIMESTAMP, t.TIMESTAMPTZ, t.NUMERIC]
_CATEGORY = {t.BOOL: "B", t.INT2: "N", t.INT4: "N", t.INT8: "N", t.FLOAT4: "N",
             t.FLOAT8: "N", t.NUMERIC: "N", t.OID: "N", t.DATE: "D", t.TIME: "D",
             t.TIMESTAMP: "D", t.TIMESTAMPTZ: "D", t.JSON: "U", t.BYTEA: "U"}


@dataclass
class Emulation:
    """One session's emulated catalog (built on first use; cheap: a few empty tables)."""

    relations: list[Relation]
    database: str
    user: str
    settings: Callable[[], dict[str, str]]
    time_limit_s: float = TIME_LIMIT_S
    _db: duckdb.DuckDBPyConnection | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _open(self) -> duckdb.DuckDBPyConnection:
        if self._db is not None:
            return self._db
        db = duckdb.connect(":memory:", config={"threads": "1", "memory_limit": "64MB"})
        db.execute("CREATE SCHEMA pgc; CREATE SCHEMA isc")
        for name, cols in PG_TABLES.items():
            db.execute(f"CREATE TABLE pgc.{name} ({cols})")
        self._fill(db)
        self._macros(db)
        for name, sql in INFO_VIEWS.items():
            db.execute(f"CREATE VIEW isc.{name} AS {sql}")
        db.execute("SET enable_external_access = false")
        db.execute("SET lock_configuration = true")
        self._db = db
        return db

    def _fill(self, db: duckdb.DuckDBPyConnection) -> None:
        schemas = sorted({r.schema for r in self.relations})
        ns = {"pg_catalog": NS_PG_CATALOG, "information_schema": NS_INFO,
              "public": NS_PUBLIC}
        oid = FIRST_OID
        for s in schemas:
            if s not in ns:
                ns[s] = oid
                oid += 1
        db.executemany("INSERT INTO pgc.pg_namespace VALUES (?, ?, ?, NULL)",
                       [(o, n, OWNER_OID) for n, o in ns.items()])
        for r in self.relations:
            rel = oid
            oid += 1
            db.execute(
                "INSERT INTO pgc.pg_class (oid, relname, relnamespace, reltype, reloftype, "
                "relowner, relam, relfilenode, reltablespace, relpages, reltuples, "
                "relallvisible, reltoastrelid, relhasindex, relisshared, relpersistence, "
                "relkind, relnatts, relchecks, relhasrules, relhastriggers, relhassubclass, "
                "relrowsecurity, relforcerowsecurity, relispopulated, relreplident, "
                "relispartition, relrewrite, relfrozenxid, relminmxid) VALUES (?, ?, ?, 0, 0, "
                "?, 2, 0, 0, 0, -1, 0, 0, false, false, 'p', 'r', ?, 0, false, false, false, "
                "false, false, true, 'd', false, 0, 0, 0)",
                [rel, r.table, ns[r.schema], OWNER_OID, len(r.columns)])
            for i, (name, typ, typmod) in enumerate(r.columns, start=1):
                length = t.TYPES.get(typ, ("", -1))[1]
                db.execute(
                    "INSERT INTO pgc.pg_attribute (attrelid, attname, atttypid, attstattarget, "
                    "attlen, attnum, attndims, attcacheoff, atttypmod, attbyval, attalign, "
                    "attstorage, attcompression, attnotnull, atthasdef, atthasmissing, "
                    "attidentity, attgenerated, attisdropped, attislocal, attinhcount, "
                    "attcollation) VALUES (?, ?, ?, -1, ?, ?, 0, -1, ?, ?, 'i', 'p', '', false, "
                    "false, false, '', '', false, true, 0, ?)",
                    [rel, name, typ, length, i, typmod, 0 < length <= 8,
                     100 if typ == t.TEXT else 0])
                if i - 1 < len(r.column_descriptions) and r.column_descriptions[i - 1]:
                    db.execute("INSERT INTO pgc.pg_description VALUES (?, 1259, ?, ?)",
                               [rel, i, r.column_descriptions[i - 1]])
            if r.description:
                db.execute("INSERT INTO pgc.pg_description VALUES (?, 1259, 0, ?)",
                           [rel, r.description])
        for typ in _BUILTIN_TYPES:
            name, length = t.TYPES[typ]
            db.execute(
                "INSERT INTO pgc.pg_type (oid, typname, typnamespace, typowner, typlen, "
                "typbyval, typtype, typcategory, typispreferred, typisdefined, typdelim, "
                "typrelid, typelem, typarray, typinput, typoutput, typreceive, typsend, "
                "typalign, typstorage, typnotnull, typbasetype, typtypmod, typndims, "
                "typcollation) VALUES (?, ?, 11, 10, ?, ?, 'b', ?, false, true, ',', 0, 0, 0, "
                "?, ?, ?, ?, 'i', 'p', false, 0, -1, 0, ?)",
                [typ, name, length, 0 < length <= 8, _CATEGORY.get(typ, "S"), f"{name}in",
                 f"{name}out", f"{name}recv", f"{name}send",
                 100 if typ in (t.TEXT, t.VARCHAR, t.NAME) else 0])
        db.execute("INSERT INTO pgc.pg_database (oid, datname, datdba, encoding, "
                   "datlocprovider, datistemplate, datallowconn, datconnlimit, dattablespace, "
                   "datcollate, datctype) VALUES (1, ?, 10, 6, 'c', false, true, -1, 1663, "
                   "'C.UTF-8', 'C.UTF-8')", [self.database])
        db.execute("INSERT INTO pgc.pg_roles (oid, rolname, rolsuper, rolinherit, "
                   "rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolconnlimit, "
                   "rolbypassrls) VALUES (10, ?, false, true, false, false, true, false, -1, "
                   "false)", [self.user])
        db.execute("INSERT INTO pgc.pg_user (usename, usesysid, usecreatedb, usesuper, "
                   "userepl, usebypassrls) VALUES (?, 10, false, false, false, false)",
                   [self.user])
        db.execute("INSERT INTO pgc.pg_am VALUES (2, 'heap', 'heap_tableam_handler', 't')")
        db.execute("INSERT INTO pgc.pg_collation VALUES (100, 'default', 11, 10)")
        db.execute("INSERT INTO pgc.pg_tablespace VALUES (1663, 'pg_default', 10)")
        if self.relations:  # (DuckDB's executemany refuses an empty list)
            db.executemany("INSERT INTO pgc.pg_tables VALUES (?, ?, ?, NULL, false, false, "
                           "false, false)", [(r.schema, r.table, self.user)
                                             for r in self.relations])
        db.executemany("INSERT INTO pgc.pg_settings (name, setting, context, vartype, source) "
                       "VALUES (?, ?, 'user', 'string', 'session')",
                       sorted(self.settings().items()))

    def _macros(self, db: duckdb.DuckDBPyConnection) -> None:
        spelled = " ".join(f"WHEN {o} THEN '{s}'" for o, s in t.PG_SPELLING.items())
        words = "[" + ", ".join(f"'{w}'" for w in _RESERVED) + "]"  # constants, no quotes
        db.execute("CREATE MACRO zs_db() AS " + exp.Literal.string(self.database).sql("duckdb"))
        db.execute(f"""
        CREATE MACRO zs_info_type(oid) AS CASE oid {spelled} ELSE 'text' END;
        CREATE MACRO zs_typmod_precision(m) AS CASE WHEN m >= 4 THEN ((m - 4) >> 16) END;
        CREATE MACRO zs_typmod_scale(m) AS CASE WHEN m >= 4 THEN ((m - 4) & 65535) END;
        CREATE MACRO format_type(oid, typmod) AS CASE
            WHEN oid = 1700 AND typmod >= 4 THEN 'numeric(' || ((typmod - 4) >> 16) || ','
                 || ((typmod - 4) & 65535) || ')'
            ELSE CASE oid {spelled} WHEN 19 THEN 'name' WHEN 26 THEN 'oid'
                 WHEN 18 THEN '"char"' WHEN 705 THEN 'unknown'
                 ELSE (SELECT typname FROM pgc.pg_type WHERE pgc.pg_type.oid = oid) END END;
        CREATE MACRO pg_table_is_visible(oid) AS true;
        CREATE MACRO pg_type_is_visible(oid) AS true;
        CREATE MACRO pg_function_is_visible(oid) AS true;
        CREATE MACRO pg_get_userbyid(oid) AS (SELECT rolname FROM pgc.pg_roles LIMIT 1);
        CREATE MACRO pg_get_expr(e, r) AS NULL::VARCHAR,
            (e, r, p) AS NULL::VARCHAR;
        CREATE MACRO pg_get_indexdef(i) AS NULL::VARCHAR,
            (i, c, p) AS NULL::VARCHAR;
        CREATE MACRO pg_get_constraintdef(c) AS NULL::VARCHAR,
            (c, p) AS NULL::VARCHAR;
        CREATE MACRO pg_get_viewdef(v) AS NULL::VARCHAR,
            (v, p) AS NULL::VARCHAR;
        CREATE MACRO pg_get_statisticsobjdef_columns(o) AS NULL::VARCHAR;
        CREATE MACRO pg_get_partkeydef(o) AS NULL::VARCHAR;
        CREATE MACRO pg_get_triggerdef(o, p) AS NULL::VARCHAR;
        CREATE MACRO pg_relation_is_publishable(o) AS false;
        CREATE MACRO pg_get_serial_sequence(t, c) AS NULL::VARCHAR;
        CREATE MACRO pg_collation_is_visible(o) AS true;
        CREATE MACRO pg_conversion_is_visible(o) AS true;
        CREATE MACRO array_upper(a, d) AS len(a);
        CREATE MACRO array_lower(a, d) AS CASE WHEN len(a) > 0 THEN 1 END;
        CREATE MACRO pg_encoding_to_char(e) AS 'UTF8';
        CREATE MACRO pg_relation_size(o) AS 0::BIGINT;
        CREATE MACRO pg_total_relation_size(o) AS 0::BIGINT;
        CREATE MACRO pg_table_size(o) AS 0::BIGINT;
        CREATE MACRO pg_size_pretty(s) AS '0 bytes';
        CREATE MACRO pg_tablespace_location(o) AS '';
        CREATE MACRO obj_description(o) AS (SELECT description FROM pgc.pg_description d
            WHERE d.objoid = o AND d.objsubid = 0 LIMIT 1),
            (o, c) AS (SELECT description FROM pgc.pg_description d
            WHERE d.objoid = o AND d.objsubid = 0 LIMIT 1);
        CREATE MACRO col_description(o, n) AS (SELECT description FROM pgc.pg_description d
            WHERE d.objoid = o AND d.objsubid = n LIMIT 1);
        CREATE MACRO shobj_description(o, c) AS NULL::VARCHAR;
        CREATE MACRO has_table_privilege(a, b) AS true,
            (a, b, c) AS true;
        CREATE MACRO has_schema_privilege(a, b) AS true,
            (a, b, c) AS true;
        CREATE MACRO has_database_privilege(a, b) AS true,
            (a, b, c) AS true;
        CREATE MACRO has_column_privilege(a, b, c) AS true,
            (a, b, c, d) AS true;
        CREATE MACRO pg_has_role(a, b) AS true,
            (a, b, c) AS true;
        CREATE MACRO pg_is_in_recovery() AS false;
        CREATE MACRO pg_postmaster_start_time() AS TIMESTAMP '2000-01-01';
        CREATE MACRO inet_server_addr() AS NULL::VARCHAR;
        CREATE MACRO inet_server_port() AS NULL::INTEGER;
        CREATE MACRO txid_current() AS 1::BIGINT;
        CREATE MACRO pg_current_xact_id() AS 1::BIGINT;
        CREATE MACRO zs_regclass(x) AS CASE
            WHEN TRY_CAST(x AS INTEGER) IS NOT NULL THEN TRY_CAST(x AS INTEGER)
            ELSE (SELECT c.oid FROM pgc.pg_class c JOIN pgc.pg_namespace n
                  ON n.oid = c.relnamespace WHERE lower(n.nspname || '.' || c.relname)
                  = lower(replace(CAST(x AS VARCHAR), '"', '')) OR lower(c.relname) =
                  lower(replace(CAST(x AS VARCHAR), '"', '')) LIMIT 1) END;
        CREATE MACRO zs_regtype(x) AS CASE
            WHEN TRY_CAST(x AS INTEGER) IS NOT NULL THEN TRY_CAST(x AS INTEGER)
            ELSE (SELECT oid FROM pgc.pg_type WHERE typname = lower(CAST(x AS VARCHAR))
                  LIMIT 1) END;
        CREATE MACRO zs_regtype_text(x) AS format_type(x, -1);
        CREATE MACRO pg_get_keywords() AS TABLE SELECT word, 'R' AS catcode,
            word NOT IN ('as', 'from', 'into', 'to', 'with') AS barelabel,
            'reserved' AS catdesc, 'can be bare label' AS baredesc
            FROM (SELECT unnest({words}) AS word);
        CREATE MACRO zs_regclass_text(x) AS (SELECT n.nspname || '.' || c.relname FROM
            pgc.pg_class c JOIN pgc.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = x);
        """)

    def close(self) -> None:
        """Close the DuckDB (a query running there is interrupted first)."""
        db, self._db = self._db, None
        if db is not None:
            db.interrupt()
            with self._lock:
                db.close()

    # --- queries ----------------------------------------------------------------------------

    def run(self, sql: str, params: Iterable[Any] = ()) -> tuple[list[str], list[int],
                                                                  list[list[Any]]]:
        """Answer a catalog query: column names, their OIDs, and the rows.

        Raises:
            DatasetNotFound: it names a relation that is not emulated (``42P01``).
            FunctionNotAllowed: it calls DuckDB's own introspection or a file reader.
            SqlSyntax: it does not parse.
        """
        text, empty = self.rewrite(sql)
        with self._lock:
            db = self._open()
            timer = threading.Timer(self.time_limit_s, db.interrupt)  # the engine's wall
            timer.start()
            try:
                cur = db.execute(text, list(params) or None)
            except duckdb.InterruptException:
                raise QueryTimeout(f"the catalog query took more than {self.time_limit_s:g} s; "
                                   "ask for less") from None
            except duckdb.Error as e:
                if empty:  # PostgreSQL-only SQL over relations that are always empty here
                    return empty, [t.TEXT] * len(empty), []
                # DuckDB's message may quote the query's literals: only its kind is said
                kind = str(e).split(":", 1)[0].strip()
                raise SqlSyntax(f"the catalog query failed ({kind}); the emulated catalog "
                                "answers what PostgreSQL clients ask of pg_catalog and "
                                "information_schema") from None
            finally:
                timer.cancel()
            names = [d[0] for d in cur.description or ()]
            oids = [_duck_oid(d[1]) for d in cur.description or ()]
            rows = [list(r) for r in cur.fetchmany(CATALOG_ROW_CAP)]
        return names, oids, rows

    def rewrite(self, sql: str) -> tuple[str, list[str]]:
        """The DuckDB text of a PostgreSQL catalog query over the emulated relations, and —
        when it reads a relation that is always empty here (policies, publications,
        inheritance, triggers…) — the names of its columns, to answer no rows should DuckDB
        not take PostgreSQL's SQL."""
        try:
            tree = sqlglot.parse_one(_prepare(sql), read="postgres")
        except (sqlglot.errors.SqlglotError, RecursionError):
            raise SqlSyntax("the catalog query does not parse as PostgreSQL") from None
        if any(w.args.get("recursive") for w in tree.find_all(exp.With)):
            raise FunctionNotAllowed("WITH RECURSIVE is not available in catalog queries")
        ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
        if isinstance(tree, exp.Select):  # the answer's columns named as PostgreSQL names them
            tree.set("expressions", [
                e if isinstance(e, (exp.Alias, exp.Star)) or (
                    isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
                else exp.alias_(e, _pg_name(e), quoted=True)
                for e in tree.expressions])
        branches = _branches(tree)
        empty: list[str] = []
        if branches and all(_reads_empty(sel) for sel in branches):
            empty = [n or f"?column?{i}" for i, n in enumerate(branches[0].named_selects)]
        return self._walk(tree, ctes).sql("duckdb"), empty

    def _walk(self, node: exp.Expr, ctes: set[str]) -> exp.Expr:
        """Rewrite bottom-up: every node sees its children already rewritten."""
        for key, value in list(node.args.items()):
            if isinstance(value, exp.Expr):
                node.set(key, self._walk(value, ctes))
            elif isinstance(value, list):
                node.set(key, [self._walk(v, ctes) if isinstance(v, exp.Expr) else v
                               for v in value])
        return self._node(node, ctes)

    def _node(self, node: exp.Expr, ctes: set[str]) -> exp.Expr:
        if isinstance(node, exp.Dot) and not isinstance(node.expression, exp.Identifier) \
                and node.this.name.lower() == "pg_catalog":
            out: exp.Expr = node.expression  # pg_catalog.f(…) is f(…) here
            return out
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
            return self._table(node, ctes)
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Func):
            if _func_name(node.this) not in _TABLE_FUNCTIONS:
                raise FunctionNotAllowed(f"table function `{_func_name(node.this)}` is not "
                                         "available in catalog queries")
            node.set("db", None)
            return node
        if isinstance(node, exp.Column) and node.args.get("db") is not None:
            schema = node.db.lower()  # pg_catalog.pg_class.relname: the table's new schema
            if schema in CATALOG_SCHEMAS:
                node.set("db", exp.to_identifier("pgc" if schema == "pg_catalog" else "isc"))
            return node
        if isinstance(node, exp.Cast):
            return _cast(node)
        if isinstance(node, exp.Func):
            return self._function(node)
        return node

    def _table(self, node: exp.Table, ctes: set[str]) -> exp.Expr:
        name = node.name.lower()
        schema = node.db.lower()
        if not schema and name in ctes:
            return node
        if schema in ("pg_catalog", "") and name in PG_TABLES:
            target = "pgc"
        elif schema in ("information_schema", "") and name in INFO_VIEWS:
            target = "isc"
        else:
            shown = f"{schema}.{name}" if schema else name
            raise DatasetNotFound(f'relation "{shown}" does not exist (catalog queries see '
                                  "pg_catalog and information_schema, as emulated for you)")
        out = exp.table_(name, db=target, alias=node.alias or None)
        return out

    def _function(self, node: exp.Func) -> exp.Expr:
        name = (node.sql_name() if not isinstance(node, exp.Anonymous)
                else str(node.this)).lower()
        simple = _SIMPLE.get(_func_name(node))
        if simple is not None:
            return simple(self)
        if isinstance(node, exp.Anonymous):
            fname = str(node.this).lower().removeprefix("pg_catalog.")
            args = node.expressions
            if fname == "current_setting" and args:
                return _setting(self, args[0])
            if fname == "set_config" and len(args) >= 2:
                value: exp.Expr = args[1]
                return value
            if fname == "to_regclass" and args:
                return exp.func("zs_regclass", args[0])
            if fname in ("json_build_object", "jsonb_build_object"):
                return exp.Anonymous(this="json_object", expressions=args)
            if fname == "to_regtype" and args:
                return exp.func("zs_regtype", args[0])
            name = fname
        elif isinstance(node, exp.CurrentUser):
            return exp.Literal.string(self.user)
        elif isinstance(node, exp.CurrentSchema):
            return exp.Literal.string("public")
        if name.startswith(_REFUSED_PREFIXES) and (name == "pg_sleep" or
                                                   not name.startswith("pg_")):
            raise FunctionNotAllowed(f"function `{name}` is not available in catalog queries")
        return node


def _duck_oid(type_name: Any) -> int:
    """The OID of a catalog answer's column (DuckDB's type name)."""
    s = str(type_name).upper()
    if s in ("INTEGER", "INT"):
        return t.INT4
    if s == "SMALLINT":
        return t.INT2
    if s.startswith(("LIST", "STRUCT", "MAP")) or s.endswith("]"):
        return t.JSON if not s.startswith("VARCHAR") else t.TEXT
    return t.oid_of_name(s)


def _prepare(sql: str) -> str:
    """PostgreSQL-isms sqlglot does not read: ``OPERATOR(pg_catalog.~)``, ``COLLATE
    pg_catalog.default``."""
    import re

    sql = re.sub(r"OPERATOR\s*\(\s*pg_catalog\s*\.\s*([~!=<>*]+)\s*\)", r"\1", sql,
                 flags=re.IGNORECASE)
    sql = re.sub(r"COLLATE\s+pg_catalog\s*\.\s*\"?default\"?", "", sql, flags=re.IGNORECASE)
    return sql.strip().rstrip(";")


def _branches(tree: exp.Expr) -> list[exp.Select]:
    """The SELECTs whose rows make the answer: the query, or each part of a union."""
    if isinstance(tree, exp.Select):
        return [tree]
    if isinstance(tree, exp.Union):
        return _branches(tree.this) + _branches(tree.expression)
    return []


def _reads_empty(sel: exp.Select) -> bool:
    """Whether the SELECT's own FROM or joins (not its subqueries) read an always-empty
    relation (then, inner joins or not, it is answered with no rows when DuckDB cannot run
    PostgreSQL's SQL)."""
    parts = [sel.args.get("from_") or sel.args.get("from"), *(sel.args.get("joins") or [])]
    return any(p is not None and isinstance(p.this, exp.Table) and
               p.this.name.lower() in ALWAYS_EMPTY for p in parts)


def _pg_name(e: exp.Expr) -> str:
    """The name PostgreSQL gives an unaliased output column."""
    if isinstance(e, exp.Column):
        return e.name
    if isinstance(e, exp.Dot):
        return _pg_name(e.expression)
    if isinstance(e, exp.Cast):
        inner = e.this
        return _pg_name(inner) if isinstance(inner, (exp.Column, exp.Func, exp.Dot)) else \
            e.to.sql("postgres").lower().replace("pg_catalog.", "")
    if isinstance(e, exp.Count):
        return "count"
    if isinstance(e, exp.CurrentUser):
        return "current_user"
    if isinstance(e, exp.CurrentVersion):
        return "version"
    if isinstance(e, exp.Func):
        return _func_name(e)
    return "?column?"


def _func_name(f: exp.Expr) -> str:
    if isinstance(f, exp.Anonymous):
        return str(f.this).lower()
    return f.sql_name().lower() if isinstance(f, exp.Func) else f.name.lower()


def _cast(node: exp.Cast) -> exp.Expr:
    to = node.to
    kind = to.sql("postgres").lower().replace("pg_catalog.", "")
    inner = node.this
    if kind in ("text", "varchar", "name") and isinstance(inner, exp.Anonymous):
        if str(inner.this).lower() == "zs_regtype":
            return exp.func("zs_regtype_text", inner)
        if str(inner.this).lower() == "zs_regclass":
            return exp.func("zs_regclass_text", inner)
    if kind in ("regclass", "oid", "regproc", "regprocedure", "regnamespace", "regrole"):
        if kind == "regclass":
            return exp.func("zs_regclass", inner)
        return exp.cast(inner, "INTEGER") if kind == "oid" else inner
    if kind == "regtype":
        return exp.func("zs_regtype", inner)
    if kind == "text" and isinstance(inner, exp.Anonymous) and \
            str(inner.this).lower() in ("zs_regtype",):
        return exp.func("zs_regtype_text", inner)
    if kind in ("name", '"char"', "char", "text"):
        return exp.cast(inner, "VARCHAR")
    if kind.endswith("[]"):
        return exp.cast(inner, exp.DataType.build(kind.replace("int2", "smallint")
                                                  .replace("int4", "integer")
                                                  .replace("oid", "integer"), dialect="duckdb"))
    if "pg_catalog." in to.sql("postgres").lower():
        try:
            return exp.cast(inner, exp.DataType.build(kind, dialect="postgres"))
        except Exception:
            return exp.cast(inner, "VARCHAR")
    return node


def _setting(emu: Emulation, arg: exp.Expr) -> exp.Expr:
    if not isinstance(arg, exp.Literal):
        raise FunctionNotAllowed("current_setting() takes a setting's name as a literal here")
    name = arg.this.lower()
    settings = emu.settings()
    if name not in settings:
        raise FunctionNotAllowed(f'unrecognized configuration parameter "{name}"')
    out: exp.Expr = exp.Literal.string(settings[name])
    return out


_SIMPLE: dict[str, Callable[[Emulation], exp.Expr]] = {
    "version": lambda e: exp.Literal.string(version_text()),
    "current_version": lambda e: exp.Literal.string(version_text()),
    "current_database": lambda e: exp.Literal.string(e.database),
    "current_catalog": lambda e: exp.Literal.string(e.database),
    "current_schema": lambda e: exp.Literal.string("public"),
    "current_user": lambda e: exp.Literal.string(e.user),
    "session_user": lambda e: exp.Literal.string(e.user),
    "user": lambda e: exp.Literal.string(e.user),
    "pg_backend_pid": lambda e: exp.Literal.number(1),
    "current_schemas": lambda e: exp.Array(expressions=[exp.Literal.string("pg_catalog"),
                                                        exp.Literal.string("public")]),
}


def version_text() -> str:
    """What ``version()`` answers: a PostgreSQL version string clients parse."""
    import zhongshu

    return (f"PostgreSQL {PG_VERSION} (Zhongshu hub {zhongshu.__version__}, governed wire "
            "endpoint) on x86_64-pc-linux-gnu")


#: functions that make a query without relations a catalog query (answered here): what
#: clients ask of the server itself; any other query without relations (``SELECT 1 / 0``) is
#: a data query, governed and answered as over HTTP
CATALOG_FUNCTIONS = frozenset({
    *_SIMPLE, "current_setting", "set_config", "to_regclass", "to_regtype", "format_type",
    "obj_description", "col_description", "shobj_description", "has_table_privilege",
    "has_schema_privilege", "has_database_privilege", "has_column_privilege", "pg_has_role",
    "inet_server_addr", "inet_server_port", "txid_current", "pg_backend_pid",
    "pg_get_userbyid", "pg_table_is_visible", "pg_type_is_visible", "pg_encoding_to_char",
    "pg_is_in_recovery", "pg_postmaster_start_time", "pg_get_expr", "pg_get_indexdef",
    "pg_get_constraintdef", "pg_get_viewdef"})


def is_catalog_query(sql: str) -> bool:
    """Whether a statement is answered from the emulated catalog: every relation it reads is
    an emulated ``pg_catalog``/``information_schema`` one (or a CTE of it), or it reads none
    and asks something of the server (``version()``, ``current_setting()``…:
    ``CATALOG_FUNCTIONS``). Anything else (a dataset, a file reader, DuckDB's own tables, a
    bare expression) is a data query, governed as over HTTP.

    >>> is_catalog_query("SELECT relname FROM pg_catalog.pg_class")
    True
    >>> is_catalog_query("SELECT * FROM traffic.passages, pg_catalog.pg_class")
    False
    """
    low = sql.lower()
    if "pg_" not in low and "information_schema" not in low and \
            not any(f in low for f in CATALOG_FUNCTIONS):
        return False  # names nothing the emulation answers: not worth parsing
    return _is_catalog_query(sql)


@functools.lru_cache(maxsize=4096)
def _is_catalog_query(sql: str) -> bool:
    try:
        tree = sqlglot.parse_one(_prepare(sql), read="postgres")
    except (sqlglot.errors.SqlglotError, RecursionError):
        return False  # the governed path refuses it, as over HTTP
    if tree is None or not isinstance(tree, exp.Query):
        return False
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    relations = 0
    for tb in tree.find_all(exp.Table):
        if not isinstance(tb.this, exp.Identifier):
            if isinstance(tb.this, exp.Func) and _func_name(tb.this) in _TABLE_FUNCTIONS:
                relations += _func_name(tb.this) in _CATALOG_TABLES  # a catalog of its own
                continue
            return False
        schema, name = tb.db.lower(), tb.name.lower()
        if not schema and name in ctes:
            continue  # a CTE's own name: it reads what its body reads
        if schema in CATALOG_SCHEMAS or (not schema and name in PG_TABLES):
            relations += 1
            continue
        return False
    if relations:
        return True
    return any(_func_name(f) in CATALOG_FUNCTIONS for f in tree.find_all(exp.Func))
