"""`zhongshu ledger` as an operator, an owner and an outside verifier use it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.conftest import RunningHub, copy_demo_city
from tests.test_cli import zs
from zhongshu.config import load_city
from zhongshu.ledger import Ledger, note, origin_of
from zhongshu.ledger.store import SqliteLedgerStore

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


def _resign_with_a_new_key(root: Path) -> str:
    """What an attacker with write access to ``state/`` does: replace the key file, drop the
    checkpoints and sign the (rewritten) tree again with the new key; its vkey."""
    import sqlite3

    (root / "state" / "ledger.key").unlink()
    city = load_city(root)
    signer = note.Signer.load_or_create(root / "state" / "ledger.key", origin_of(city),
                                        note.ED25519)
    with sqlite3.connect(root / "state" / "ledger.db") as c:
        c.execute("DELETE FROM checkpoints")
        c.execute("DELETE FROM cosignatures")
    forged = Ledger(SqliteLedgerStore(root / "state" / "ledger.db"), origin_of(city), signer)
    assert forged.publish() is not None
    forged.store.close()
    return signer.verifier.vkey


def test_verify_checks_the_pin_not_the_folders_own_key(demo_dir: Path, city_tmp: Path) -> None:
    root = copy_demo_city(demo_dir, city_tmp / "city")
    assert zs("members", "token", "app-traffic", "--dir", str(root)).returncode == 0
    pin_file = root / "ledger.pin"
    assert pin_file.is_file()  # recorded when the key was created, beside city.toml
    # entries but not one signed checkpoint: nothing vouches for them, so not OK
    res = zs("ledger", "verify", "--dir", str(root))
    assert res.returncode == 1 and "no signed checkpoint" in res.stdout, res.stdout
    assert "OK" not in res.stdout and "Traceback" not in res.stderr
    lg = Ledger.open(load_city(root), start=False)
    assert lg.publish() is not None
    honest = lg.log_key.verifier.vkey
    lg.store.close()
    assert honest in pin_file.read_text()
    ok = zs("ledger", "verify", "--dir", str(root))
    assert ok.returncode == 0 and "OK" in ok.stdout and "ledger.pin" in ok.stderr, ok.stderr
    # the key file replaced, everything re-signed: the pin catches it…
    forged = _resign_with_a_new_key(root)
    res = zs("ledger", "verify", "--dir", str(root))
    assert res.returncode == 1 and "not signed by the log key" in res.stdout, res.stdout
    # …and the hub will not open (so never sign) with a key other than the pinned one
    res = zs("ledger", "key", "--dir", str(root))
    assert res.returncode == 1 and "not the one pinned" in res.stderr
    assert "Traceback" not in res.stderr
    # the pin removed too: no pin, no OK — never the folder's own key
    pin_file.unlink()
    res = zs("ledger", "verify", "--dir", str(root))
    assert res.returncode == 1 and "no log key pinned" in res.stderr, res.stdout + res.stderr
    assert "OK" not in res.stdout
    # a key brought from elsewhere decides: the honest one fails, the forger's passes
    assert zs("ledger", "verify", "--dir", str(root), "--log-key", honest).returncode == 1
    assert zs("ledger", "verify", "--dir", str(root), "--log-key", forged).returncode == 0
    # a pin in city.toml is the operator's own, and wins over nothing at all
    with (root / "city.toml").open("a", encoding="utf-8") as f:
        f.write(f'\n[ledger]\nlog_key = "{honest}"\n')
    res = zs("ledger", "verify", "--dir", str(root))
    assert res.returncode == 1 and "city.toml" in res.stderr


def test_verify_over_http_needs_a_pinned_key(hub: RunningHub) -> None:
    res = zs("ledger", "verify", "--url", hub.url)
    assert res.returncode == 1 and "no log key pinned" in res.stderr
    assert "OK" not in res.stdout and "Traceback" not in res.stderr


def test_pin_records_the_current_key_once(demo_dir: Path, city_tmp: Path) -> None:
    root = copy_demo_city(demo_dir, city_tmp / "city")
    assert zs("members", "token", "app-traffic", "--dir", str(root)).returncode == 0
    vkey = (root / "ledger.pin").read_text().splitlines()[-1]
    res = zs("ledger", "pin", "--dir", str(root))
    assert res.returncode == 1 and "already pinned" in res.stderr
    (root / "ledger.pin").unlink()  # a ledger older than pinning
    res = zs("ledger", "pin", "--dir", str(root))
    assert res.returncode == 0, res.stderr
    assert (root / "ledger.pin").read_text().splitlines()[-1] == vkey
