"""The protocol over real HTTP: shapes, codes and formats of PROTOCOL.md."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from tests.conftest import RunningHub
from zhongshu import errors
from zhongshu.client import Hub
from zhongshu.node import Node

P = "city-operations"


@pytest.fixture(scope="module")
def http(hub: RunningHub) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.url, timeout=30, headers={
            "Authorization": f"Bearer {hub.token('cockpit-city')}"}) as c:
        yield c


def _error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) <= {"error", "receipt"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return str(body["error"]["message"])


def test_unauthenticated(hub: RunningHub) -> None:
    for headers in ({}, {"Authorization": "Bearer zs_nope"}, {"Authorization": "Basic abc"}):
        r = httpx.get(f"{hub.url}/v1/catalog", headers=headers)
        _error(r, 401, "unauthenticated")
        assert r.headers["www-authenticate"] == "Bearer"
    r = httpx.post(f"{hub.url}/v1/query", json={"sql": "SELECT 1", "purpose": P})
    _error(r, 401, "unauthenticated")


def test_health_is_a_summary_except_for_operators(http: httpx.Client, hub: RunningHub) -> None:
    body = http.get("/v1/health").json()  # the city cockpit: counts and states, no names
    assert body["status"] == "ok" and set(body) == {"status", "summary"}
    assert body["summary"]["sources_down"] == 0 and body["summary"]["sources_up"] >= 8
    assert body["summary"]["ledger"] == "ok" and body["summary"]["lost"] == []
    for member in ("data-bureau", "auditor"):
        r = httpx.get(f"{hub.url}/v1/health",
                      headers={"Authorization": f"Bearer {hub.token(member)}"})
        detail = r.json()
        assert detail["sources"]["traffic-police-db"] == "ok", member
        assert detail["ledger"]["signing"] == "ok" and detail["ledger"]["finality"] == "none"
        assert detail["ledger"]["size"] >= 1


def test_catalog_lists_listed_and_own(http: httpx.Client, hub: RunningHub) -> None:
    names = {d["name"] for d in http.get("/v1/catalog").json()}
    assert "traffic.passages" in names and "credit.scores" not in names
    passages = next(d for d in http.get("/v1/catalog").json() if d["name"] == "traffic.passages")
    assert passages["access"] == "partial"
    assert {"name", "owner", "title", "description", "columns", "area_column", "access"} <= \
        set(passages)
    assert {"name": "plate", "type": "VARCHAR", "classification": "personal",
            "description": passages["columns"][2]["description"]} == passages["columns"][2]
    own = httpx.get(f"{hub.url}/v1/catalog", headers={
        "Authorization": f"Bearer {hub.token('credit-bureau')}"}).json()
    assert next(d for d in own if d["name"] == "credit.scores")["access"] == "full"


def test_unlisted_answers_like_missing(http: httpx.Client) -> None:
    m1 = _error(http.get("/v1/datasets/credit.scores"), 404, "dataset_not_found")
    m2 = _error(http.get("/v1/datasets/credit.nothing"), 404, "dataset_not_found")
    assert m1.replace("credit.scores", "X") == m2.replace("credit.nothing", "X")
    q1 = _error(http.post("/v1/query", json={"sql": "SELECT * FROM credit.scores",
                                             "purpose": P}), 404, "dataset_not_found")
    q2 = _error(http.post("/v1/query", json={"sql": "SELECT * FROM credit.nothing",
                                             "purpose": P}), 404, "dataset_not_found")
    assert q1.replace("credit.scores", "X") == q2.replace("credit.nothing", "X")


def test_dataset_detail(http: httpx.Client) -> None:
    d = http.get("/v1/datasets/traffic.passages").json()
    assert d["grants"] and "plate" not in d["grants"][0]["columns"]


def test_query_json_and_arrow_agree(http: httpx.Client) -> None:
    sql = ("SELECT camera_id, passed_at, speed_kmh FROM traffic.passages "
           "ORDER BY passage_id LIMIT 20")
    j = http.post("/v1/query", json={"sql": sql, "purpose": P}).json()
    assert set(j) == {"columns", "rows", "row_count", "truncated", "row_scope", "receipt"}
    assert j["columns"] == [{"name": "camera_id", "type": "VARCHAR"},
                            {"name": "passed_at", "type": "TIMESTAMP"},
                            {"name": "speed_kmh", "type": "DOUBLE"}]
    assert j["row_count"] == len(j["rows"]) == 20 and j["truncated"] is False
    r = http.post("/v1/query", json={"sql": sql, "purpose": P, "format": "arrow"})
    assert r.headers["content-type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(r.content).read_all()
    assert table.column("camera_id").to_pylist() == [row[0] for row in j["rows"]]
    assert [t.isoformat() for t in table.column("passed_at").to_pylist()] == \
        [row[1] for row in j["rows"]]


def test_limit_truncates(http: httpx.Client) -> None:
    j = http.post("/v1/query", json={"sql": "SELECT * FROM traffic.checkpoints",
                                     "purpose": P, "limit": 5}).json()
    assert j["row_count"] == 5 and j["truncated"] is True
    j = http.post("/v1/query", json={"sql": "SELECT * FROM traffic.checkpoints LIMIT 3",
                                     "purpose": P, "limit": 5}).json()
    assert j["row_count"] == 3 and j["truncated"] is False


@pytest.mark.parametrize(("body", "fragment"), [
    ({"sql": "SELECT 1"}, "purpose"),
    ({"purpose": P}, "sql"),
    ({"sql": "SELECT 1", "purpose": P, "format": "xml"}, "format"),
    ({"sql": "SELECT 1", "purpose": P, "limit": 0}, "limit"),
    ({"sql": "", "purpose": P}, "sql"),
])
def test_bad_request_bodies(http: httpx.Client, body: dict[str, object], fragment: str) -> None:
    assert fragment in _error(http.post("/v1/query", json=body), 400, "bad_request")


def test_not_json(http: httpx.Client) -> None:
    r = http.post("/v1/query", content=b"{not json", headers={"content-type": "application/json"})
    _error(r, 400, "bad_request")


def test_refusal_codes_over_http(http: httpx.Client) -> None:
    _error(http.post("/v1/query", json={"sql": "SELECT plate FROM traffic.passages",
                                        "purpose": P}), 403, "column_not_granted")
    _error(http.post("/v1/query", json={"sql": "DROP TABLE traffic.passages", "purpose": P}),
           400, "statement_not_allowed")
    _error(http.post("/v1/query", json={"sql": "SELECT * FROM read_csv('/etc/passwd')",
                                        "purpose": P}), 400, "function_not_allowed")
    _error(http.get("/v1/nothing"), 404, "not_found")


def test_auditor_reads_no_data(hub: RunningHub) -> None:
    r = httpx.post(f"{hub.url}/v1/query", headers={
        "Authorization": f"Bearer {hub.token('auditor')}"},
        json={"sql": "SELECT count(*) FROM traffic.checkpoints", "purpose": "audit"})
    assert "ask its owner" in _error(r, 403, "forbidden")


def test_openapi_describes_the_core(http: httpx.Client) -> None:
    spec = http.get("/v1/openapi.json").json()
    for path in ("/v1/health", "/v1/catalog", "/v1/datasets/{name}", "/v1/query", "/metrics"):
        assert path in spec["paths"], path
    assert "application/vnd.apache.arrow.stream" in str(spec["paths"]["/v1/query"])


def test_metrics_count_without_identities(http: httpx.Client, hub: RunningHub) -> None:
    httpx.get(f"{hub.url}/v1/catalog")
    text = httpx.get(f"{hub.url}/metrics").text
    assert "zhongshu_unauthenticated_total" in text
    assert 'zhongshu_sources{state="down"} 0' in text
    assert "traffic-police-db" not in text and "credit" not in text  # no source names
    for series in ("zhongshu_ledger_size", "zhongshu_ledger_checkpoint_age_seconds",
                   "zhongshu_ledger_cosigned", "zhongshu_ledger_final",
                   "zhongshu_ledger_refused_to_sign_total"):
        assert f"\n{series} " in text, series
    assert "cockpit-city" not in text and hub.token("cockpit-city") not in text


def test_client(hub: RunningHub) -> None:
    with Hub(hub.url, hub.token("cockpit-city")) as client:
        t = client.query("SELECT district, count(*) AS n FROM traffic.checkpoints GROUP BY 1 "
                         "ORDER BY 1", purpose=P)
        assert t.num_rows == 6 and t.schema.field("n").type == pa.int64()
        assert client.dataset("traffic.passages")["name"] == "traffic.passages"
        assert len(client.catalog()) >= 15
        with pytest.raises(errors.ColumnNotGranted):
            client.query("SELECT plate FROM traffic.passages", purpose=P)
        with pytest.raises(errors.DatasetNotFound):
            client.dataset("credit.scores")
    with Hub(hub.url, "zs_wrong") as client, pytest.raises(errors.Unauthenticated):
        client.catalog()


def test_row_cap_and_byte_limit(demo_dir: Path, city_tmp: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    root = city_tmp / "city"
    shutil.copytree(demo_dir, root, ignore=shutil.ignore_patterns("state", "ledger.pin"))
    monkeypatch.setenv("ZHONGSHU_ROW_CAP", "7")
    monkeypatch.setenv("ZHONGSHU_MAX_RESULT_BYTES", "4096")
    node = Node.open(root, serve=True, monitor=False)
    running = RunningHub(node, root)
    try:
        h = {"Authorization": f"Bearer {running.token('cockpit-city')}"}
        j = httpx.post(f"{running.url}/v1/query", headers=h, json={
            "sql": "SELECT camera_id FROM traffic.checkpoints", "purpose": P}).json()
        assert j["row_count"] == 7 and j["truncated"] is True
        r = httpx.post(f"{running.url}/v1/query", headers=h, json={
            "sql": "SELECT string_agg(camera_id, ',') AS s FROM traffic.checkpoints",
            "purpose": P})
        _error(r, 413, "result_too_large")
    finally:
        running.stop()
        node.close()


def test_refusals_are_logged(http: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="zhongshu.refusals"):
        http.post("/v1/query", json={"sql": "SELECT plate FROM traffic.passages", "purpose": P})
    lines = [r.getMessage() for r in caplog.records if r.name == "zhongshu.refusals"]
    assert any("column_not_granted" in m and "cockpit-city" in m for m in lines), lines
