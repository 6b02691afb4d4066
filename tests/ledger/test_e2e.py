"""The ledger end to end, with hubs as separate processes: killed mid-load, and two hubs
witnessing each other."""

from __future__ import annotations

import json
import random
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w

from tests.conftest import HubProcess, copy_demo_city, free_port
from tests.test_cli import zs
from zhongshu.ledger import note
from zhongshu.ledger.verify import check_receipt

pytestmark = pytest.mark.slow
P = "city-operations"
QUERIES = [
    "SELECT district, count(*) AS n FROM traffic.checkpoints GROUP BY 1 ORDER BY 1",
    "SELECT camera_id, district FROM traffic.checkpoints ORDER BY camera_id LIMIT 3",
    "SELECT count(*) AS n FROM traffic.segments",
]


def _copy_city(demo_dir: Path, root: Path, origin: str) -> tuple[Path, str]:
    copy_demo_city(demo_dir, root)
    doc = tomllib.loads((root / "city.toml").read_text())
    doc["hub"]["origin"] = origin
    (root / "city.toml").write_text(tomli_w.dumps(doc))
    res = zs("members", "token", "cockpit-city", "--dir", str(root))
    assert res.returncode == 0, res.stderr
    return root, res.stdout.strip().splitlines()[-1]


def _load(url: str, token: str, stop: threading.Event, got: list[tuple[dict[str, Any], bytes]]
          ) -> None:
    with httpx.Client(base_url=url, timeout=10,
                      headers={"Authorization": f"Bearer {token}"}) as c:
        while not stop.is_set():
            try:
                r = c.post("/v1/query", json={"sql": random.choice(QUERIES), "purpose": P})
            except httpx.HTTPError:
                return  # the hub was killed
            if r.status_code == 200:
                body = r.json()
                rows = json.dumps(body["rows"], separators=(",", ":"), ensure_ascii=False)
                got.append((body["receipt"], rows.encode()))


def test_every_answered_exchange_survives_sigkill(demo_dir: Path, city_tmp: Path) -> None:
    root, token = _copy_city(demo_dir, city_tmp / "crash", "hub.crash-test")
    answered: list[tuple[dict[str, Any], bytes]] = []
    rng = random.Random(7)
    for _ in range(4):
        hub = HubProcess(root, free_port())
        stop = threading.Event()
        threads = [threading.Thread(target=_load, args=(hub.url, token, stop, answered))
                   for _ in range(4)]
        before = len(answered)
        for t in threads:
            t.start()
        # the first answers of this life (a loaded machine starts the sequencer late), then a
        # random moment under load: the kill lands with appends in flight
        deadline = time.monotonic() + 60
        while len(answered) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.8, 2.5))
        hub.kill()  # mid-load: appends in flight, a checkpoint perhaps half-written
        stop.set()
        for t in threads:
            t.join(15)
    assert len(answered) > 100
    print(f"{len(answered)} answered exchanges across 4 SIGKILLs")
    hub = HubProcess(root, free_port())
    try:
        indices = [r["index"] for r, _ in answered]
        deadline = time.monotonic() + 60  # a checkpoint covering everything answered
        while time.monotonic() < deadline:
            r = httpx.get(f"{hub.url}/v1/ledger/checkpoint", params={"format": "json"},
                          timeout=10)
            if r.status_code == 200 and int(r.json()["size"]) > max(indices):
                break
            time.sleep(0.05)
        key = httpx.get(f"{hub.url}/v1/ledger/key").json()["log"]
        assert len(set(indices)) == len(indices), "an index was handed out twice"
        with httpx.Client(base_url=hub.url, timeout=30,
                          headers={"Authorization": f"Bearer {token}"}) as c:
            for receipt, rows in answered:
                bundle = c.get(f"/v1/ledger/receipts/{receipt['index']}").json()
                assert bundle["receipt"] == receipt
                report = check_receipt(bundle, log_key=key, answer=rows)
                assert report.ok, (receipt, report.problems)
    finally:
        hub.stop()
    res = zs("ledger", "verify", "--dir", str(root), "--log-key", key)
    assert res.returncode == 0, res.stdout + res.stderr


def test_two_hubs_witness_each_other_and_catch_a_fork(demo_dir: Path, city_tmp: Path) -> None:
    city, city_token = _copy_city(demo_dir, city_tmp / "city", "hub.demo-city")
    xihu, xihu_token = _copy_city(demo_dir, city_tmp / "xihu", "hub.xihu.demo-city")
    keys = {}
    for root in (city, xihu):
        out = zs("ledger", "key", "--dir", str(root)).stdout.split()
        keys[root] = {"origin": out[1], "log": out[3], "witness": out[5]}
    ports = {city: free_port(), xihu: free_port()}
    for me, peer in ((city, xihu), (xihu, city)):
        doc = tomllib.loads((me / "city.toml").read_text())
        doc["ledger"] = {
            "witnesses": [{"name": keys[peer]["witness"].split("+")[0],
                           "url": f"http://127.0.0.1:{ports[peer]}/v1/ledger/witness",
                           "key": keys[peer]["witness"]}],
            "quorum": 1,
            "witnessing": [{"origin": keys[peer]["origin"], "key": keys[peer]["log"]}]}
        (me / "city.toml").write_text(tomli_w.dumps(doc))
    hubs = {root: HubProcess(root, ports[root]) for root in (city, xihu)}
    try:
        for root, token in ((city, city_token), (xihu, xihu_token)):
            r = httpx.post(f"{hubs[root].url}/v1/query", json={"sql": QUERIES[0], "purpose": P},
                           headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200
        deadline = time.monotonic() + 20
        final: dict[Path, dict[str, object]] = {}
        while time.monotonic() < deadline and not all(final.get(r, {}).get("final")
                                                      for r in hubs):
            for root, hub in hubs.items():
                final[root] = httpx.get(f"{hub.url}/v1/ledger/checkpoint",
                                        params={"format": "json"}).json()
            time.sleep(0.3)
        assert all(f["final"] for f in final.values()), final
        # the checkpoint found final carries the peer's cosignature, valid under its witness
        # key (not the latest one fetched again: the log may have grown since)
        ckpt = note.parse_checkpoint(str(final[xihu]["note"]))
        assert ckpt.cosigned_by(note.Verifier.parse(keys[city]["witness"])) is not None
        assert ckpt.signed_by(note.Verifier.parse(keys[xihu]["log"]))
        # the district's operator forks its log: same size as the witness last cosigned,
        # another root, its own key (the log may have grown since the checkpoint above: the
        # witness then names the size it holds, as it does for any log)
        signer = note.Signer.load_or_create(xihu / "state" / "ledger.key",
                                            keys[xihu]["origin"], note.ED25519)
        size = ckpt.size
        for _ in range(5):
            forged_body = note.body(ckpt.origin, size, bytes(32))
            forged = forged_body + "\n" + signer.sign_note(forged_body)
            r = httpx.post(f"{hubs[city].url}/v1/ledger/witness/add-checkpoint",
                           content=f"old {size}\n\n{forged}".encode())
            assert r.status_code == 409, r.text
            if not r.headers.get("content-type", "").startswith("text/x.tlog.size"):
                break
            size = int(r.text.strip())
        evidence = httpx.get(f"{hubs[city].url}/v1/ledger/witness/evidence").json()
        assert evidence and evidence[0]["kind"] == "fork"
        assert forged_body in evidence[0]["detail"]
        # and an outside verifier holding the forged note sees the fork too
        (city_tmp / "forged.txt").write_text(forged)
        res = zs("ledger", "verify", "--url", hubs[xihu].url, "--log-key", keys[xihu]["log"],
                 "--checkpoint", str(city_tmp / "forged.txt"))
        assert res.returncode == 1 and "fork" in res.stdout
    finally:
        for hub in hubs.values():
            hub.stop()
