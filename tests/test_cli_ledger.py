"""`zhongshu ledger` as an operator, an owner and an outside verifier use it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.conftest import RunningHub
from tests.test_cli import zs

P = "city-operations"
SQL = "SELECT district, count(*) AS n FROM traffic.checkpoints GROUP BY 1 ORDER BY 1"


def test_verify_prove_and_check_a_receipt(hub: RunningHub, tmp_path: Path) -> None:
    token = hub.token("cockpit-city")
    r = httpx.post(f"{hub.url}/v1/query", json={"sql": SQL, "purpose": P},
                   headers={"Authorization": f"Bearer {token}"})
    index = r.json()["receipt"]["index"]
    hub.wait_checkpoint(index + 1)  # the publisher thread signs one about once a second
    key = zs("ledger", "key", "--dir", str(hub.city_dir))
    assert key.returncode == 0, key.stderr
    log_key = next(ln.split()[1] for ln in key.stdout.splitlines() if ln.startswith("log "))
    # the outside verifier: tiles and checkpoints over HTTP, the log key pinned
    res = zs("ledger", "verify", "--url", hub.url, "--log-key", log_key)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK" in res.stdout
    res = zs("ledger", "verify", "--dir", str(hub.city_dir))
    assert res.returncode == 0, res.stdout + res.stderr
    # the caller's own receipt, checked offline, with the bytes it received
    bundle = zs("ledger", "prove", str(index), "--url", hub.url, env={"ZHONGSHU_TOKEN": token})
    assert bundle.returncode == 0, bundle.stderr
    (tmp_path / "r.json").write_text(bundle.stdout)
    rows = json.dumps(r.json()["rows"], separators=(",", ":"), ensure_ascii=False)
    (tmp_path / "rows.json").write_text(rows)
    ok = zs("ledger", "check-receipt", str(tmp_path / "r.json"), "--log-key", log_key,
            "--answer", str(tmp_path / "rows.json"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # a receipt whose entry was altered fails, in one line
    data = json.loads(bundle.stdout)
    data["entry"] = \
        data["entry"].replace("cockpit-city", "cockpit-xihu")
    (tmp_path / "bad.json").write_text(json.dumps(data))
    bad = zs("ledger", "check-receipt", str(tmp_path / "bad.json"), "--log-key", log_key)
    assert bad.returncode == 1 and "FAIL" in bad.stdout and "Traceback" not in bad.stderr
    # a pinned key that is not the log's fails
    other = log_key.split("+")[0] + "+00000000+" + log_key.split("+", 2)[2]
    wrong = zs("ledger", "verify", "--url", hub.url, "--log-key", other)
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr


def test_owner_usage_report(hub: RunningHub) -> None:
    r = httpx.post(f"{hub.url}/v1/query", json={"sql": SQL, "purpose": P},
                   headers={"Authorization": f"Bearer {hub.token('cockpit-city')}"})
    hub.wait_checkpoint(r.json()["receipt"]["index"] + 1)  # usage reads through the latest
    res = zs("ledger", "usage", "--dataset", "traffic.checkpoints", "--url", hub.url,
             "--format", "json", env={"ZHONGSHU_TOKEN": hub.token("traffic-police")})
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert any(e["entry"]["caller"] == "cockpit-city" for e in data["entries"])
    assert "every proof verified" in res.stderr
    res = zs("ledger", "usage", "--dataset", "traffic.checkpoints", "--url", hub.url,
             env={"ZHONGSHU_TOKEN": hub.token("app-parking")})
    assert res.returncode == 1 and res.stderr.startswith("error: not_found")
