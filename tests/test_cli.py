"""The `zhongshu` command as operators' scripts use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import RunningHub

P = "city-operations"


def zs(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zhongshu.cli", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def test_members_token_is_accepted_at_once(hub: RunningHub) -> None:
    res = zs("members", "token", "app-traffic", "--dir", str(hub.city_dir))
    assert res.returncode == 0, res.stderr
    token = res.stdout.strip().splitlines()[-1]
    assert token.startswith("zs_") and " " not in token
    r = httpx.get(f"{hub.url}/v1/catalog", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    # an older token of the same member stays valid
    assert httpx.get(f"{hub.url}/v1/catalog", headers={
        "Authorization": f"Bearer {hub.token('app-traffic')}"}).status_code == 200


def test_unknown_member_is_one_line(demo_dir: Path) -> None:
    res = zs("members", "token", "nobody", "--dir", str(demo_dir))
    assert res.returncode == 1
    assert res.stderr.strip().startswith("error: no member `nobody`")
    assert "Traceback" not in res.stderr


def test_query_formats_and_errors(hub: RunningHub) -> None:
    env = {"ZHONGSHU_TOKEN": hub.token("cockpit-city"), "ZHONGSHU_URL": hub.url}
    sql = "SELECT district, count(*) AS n FROM traffic.checkpoints GROUP BY 1 ORDER BY 1"
    csv = zs("query", "--purpose", P, "--format", "csv", sql, env=env)
    assert csv.returncode == 0, csv.stderr
    lines = csv.stdout.strip().splitlines()
    assert lines[0] == '"district","n"' and len(lines) == 7
    js = json.loads(zs("query", "--purpose", P, "--format", "json", sql, env=env).stdout)
    assert [r["district"] for r in js] == sorted(r["district"] for r in js)
    table = zs("query", "--purpose", P, sql, env=env)
    assert "xihu" in table.stdout and "6 row(s)" in table.stdout
    bad = zs("query", "--purpose", P, "SELECT plate FROM traffic.passages", env=env)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        "error: column `plate` of `traffic.passages` is not granted to `cockpit-city` for "
        "purpose `city-operations`"]
    down = zs("query", "--purpose", P, "--url", "http://127.0.0.1:9", sql, env=env)
    assert down.returncode == 1 and "cannot reach the hub" in down.stderr
    assert "Traceback" not in bad.stderr + down.stderr


def test_init_scaffolds_a_loadable_city(tmp_path: Path) -> None:
    res = zs("init", "newtown", "--dir", str(tmp_path / "newtown"))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "newtown" / "city.toml").is_file()
    check = zs("catalog", "check", "--dir", str(tmp_path / "newtown"))
    assert check.returncode == 0, check.stdout + check.stderr
    again = zs("init", "newtown", "--dir", str(tmp_path / "newtown"))
    assert again.returncode == 1 and "already exists" in again.stderr


def test_catalog_list_and_show(demo_dir: Path) -> None:
    res = zs("catalog", "list", "--dir", str(demo_dir))
    assert res.returncode == 0 and "traffic.passages" in res.stdout
    show = zs("catalog", "show", "parking_qiantang.tickets", "--dir", str(demo_dir))
    assert "replace(car_plate" in show.stdout


def test_demo_builds_and_reuses(city_tmp: Path) -> None:
    target = city_tmp / "d"
    first = zs("demo", "--dir", str(target), "--scale", "0.005", "--seed", "3", "--no-serve")
    assert first.returncode == 0, first.stderr
    assert (target / "state" / "tokens" / "cockpit-xihu.token").is_file()
    assert oct((target / "state" / "tokens" / "outsider.token").stat().st_mode)[-3:] == "600"
    token = (target / "state" / "tokens" / "cockpit-xihu.token").read_text()
    again = zs("demo", "--dir", str(target), "--no-serve")
    assert again.returncode == 0 and "Reusing the demo city" in again.stdout
    assert (target / "state" / "tokens" / "cockpit-xihu.token").read_text() == token


def test_revoke_then_token_refused(hub: RunningHub) -> None:
    res = zs("members", "token", "app-medical", "--dir", str(hub.city_dir))
    token = res.stdout.strip().splitlines()[-1]
    listing = zs("members", "list", "--dir", str(hub.city_dir))
    assert "app-medical" in listing.stdout
    assert zs("members", "revoke", "app-medical", "--dir", str(hub.city_dir)).returncode == 0
    r = httpx.get(f"{hub.url}/v1/catalog", headers={"Authorization": f"Bearer {token}"})
    # the authenticator caches a known token for at most 5 s; this one was never used
    assert r.status_code == 401


def test_policy_explain(hub: RunningHub) -> None:
    res = zs("policy", "explain", "--dir", str(hub.city_dir), "--as", "app-parking",
             "--purpose", "convenient-parking", "--json",
             "SELECT s.plate, t.car_plate FROM parking_westlake.sessions s JOIN "
             "parking_qiantang.tickets t ON s.plate = t.car_plate")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    masks = {(d["dataset"], c["column"]): (c["grant"], c["mask"])
             for d in report["datasets"] for c in d["columns"]}
    assert masks[("parking_westlake.sessions", "plate")] == (
        "app-parking:parking_westlake.sessions", "pseudonym")
    assert masks[("parking_qiantang.tickets", "car_plate")][1] == "pseudonym"
    assert report["path"] == "duckdb" and "ZS_PSEUDONYM(" in report["governed_sql"]
    r = httpx.post(f"{hub.url}/v1/query/explain", headers={
        "Authorization": f"Bearer {hub.token('cockpit-xihu')}"}, json={
        "sql": "SELECT count(*) FROM traffic.passages", "purpose": "district-operations"})
    assert r.status_code == 200
    assert r.json()["row_scope"][0]["dataset"] == "traffic.passages"
    refused = httpx.post(f"{hub.url}/v1/query/explain", headers={
        "Authorization": f"Bearer {hub.token('outsider')}"}, json={
        "sql": "SELECT count(*) FROM traffic.passages", "purpose": "x"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"


def test_members_add(city_tmp: Path, demo_dir: Path) -> None:
    import shutil

    root = city_tmp / "c"
    shutil.copytree(demo_dir, root, ignore=shutil.ignore_patterns("state", "ledger.pin"))
    ok = zs("members", "add", "hub-yuhang", "--kind", "hub", "--title", "Yuhang hub",
            "--dir", str(root))
    assert ok.returncode == 0, ok.stderr
    assert (root / "members" / "hub-yuhang.toml").is_file()
    assert "hub-yuhang" in zs("members", "list", "--dir", str(root)).stdout
    assert "member.add" in zs("changes", "--dir", str(root)).stdout
    again = zs("members", "add", "hub-yuhang", "--kind", "hub", "--dir", str(root))
    assert again.returncode == 1 and "already exists" in again.stderr
    bad = zs("members", "add", "x-y", "--kind", "wizard", "--dir", str(root))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
