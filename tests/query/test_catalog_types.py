"""The catalog's types are the types answered: for every dataset of the demo city, on the
source's own engine (pushdown) and on DuckDB, each column of ``SELECT *`` has exactly the
type the catalog declares — as DuckDB names the answer's Arrow type, the name the JSON answer
reports — whatever the department's engine holds (SQLite's ``DECIMAL(10,2)`` holds doubles,
a CSV's money is read as DOUBLE: the dataset's view casts them to the declared type).
"""

from __future__ import annotations

import duckdb
import pytest

from zhongshu.catalog.catalog import same_type
from zhongshu.policy.identity import Caller
from zhongshu.protocol.encode import type_names
from zhongshu.query.service import QueryService


def _declared(t: str) -> str:
    """DuckDB's own name of a declared type (``INT`` → ``INTEGER``), asked of DuckDB."""
    return str(duckdb.sql(f"SELECT CAST(NULL AS {t}) AS v").types[0])


def _check(svc: QueryService) -> set[str]:
    paths: set[str] = set()
    filled = 0
    for name, ds in sorted(svc.catalog.datasets.items()):
        if ds.status != "ok":
            continue
        caller = Caller(svc.catalog.members[ds.owner])  # the owner reads every column
        sql = f"SELECT * FROM {name} LIMIT 20"
        want = [_declared(c.type) for c in ds.columns]
        for engine in ("auto", "duckdb"):
            result = svc.run(caller, sql, "type-check", engine=engine)
            got = type_names(result.schema)
            assert got == want, (name, engine, result.path,
                                 [(c.name, w, g) for c, w, g in zip(ds.columns, want, got,
                                                                    strict=True) if w != g])
            paths.add(result.path.split(":")[0])
            filled += result.num_rows > 0  # typed values, not just a schema
    assert filled >= len(svc.catalog.datasets)  # most of them hold rows (both engines)
    return paths


def test_every_demo_dataset_answers_its_declared_types(service: QueryService) -> None:
    # the demo declares money as DECIMAL(10,2) while its SQLite files hold doubles
    fees = service.catalog.dataset("health.visits")
    assert fees is not None and same_type(fees.column("fee_yuan").type,  # type: ignore[union-attr]
                                          "DECIMAL(10,2)")
    assert fees.observed["fee_yuan"] == "DOUBLE"
    assert _check(service) == {"native", "duckdb"}


@pytest.mark.server
def test_every_real_engine_dataset_answers_its_declared_types(real_service: QueryService
                                                              ) -> None:
    assert _check(real_service) == {"native", "duckdb"}
