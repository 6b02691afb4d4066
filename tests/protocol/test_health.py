"""What the hub says about itself, and to whom: the status and counts for every member, the
detail for its operators and auditors, and — for an outsider or an anonymous caller — no
path, host, or name of an unlisted dataset, source or member in any answer.

Also: a witness that refuses (or cannot be reached) makes the hub ``degraded`` with finality
lost, and a hub that cannot sign answers receipts ``503 ledger_unavailable``."""

from __future__ import annotations

import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w

from tests.conftest import RunningHub, copy_demo_city
from zhongshu.ledger import entry, note
from zhongshu.node import Node

P = "city-operations"


def _hidden(hub: RunningHub, caller: str) -> set[str]:
    """What ``caller`` must never read: the city folder's absolute path, every source's
    host and file path, and the names of unlisted datasets, of sources that serve only
    unlisted datasets and of members (departments, enterprises) that list nothing."""
    catalog = hub.service.catalog
    out = {str(hub.city_dir), str(hub.city_dir.resolve())}
    for src in catalog.sources.values():
        cfg = src.config.model_dump()
        for key in ("host", "path", "dir", "file"):
            if isinstance(cfg.get(key), str) and cfg[key]:
                out.add(cfg[key])
    listed_owners = {d.owner for d in catalog.datasets.values() if d.listed}
    by_source: dict[str, bool] = {}
    for d in catalog.datasets.values():
        if not d.listed:
            out.add(d.name)
        by_source[d.source.name] = by_source.get(d.source.name, False) or d.listed
    out |= {s for s, listed in by_source.items() if not listed}
    for m in hub.service.city.members.values():
        if m.member.kind in ("department", "enterprise") and m.member.name != caller and \
                m.member.name not in listed_owners:
            out.add(m.member.name)
    return {h for h in out if h not in ("", "127.0.0.1", "localhost")} | {"/tmp/", "/work/"}


def _answers(hub: RunningHub, headers: dict[str, str]) -> Iterator[tuple[str, httpx.Response]]:
    """Every answer an outsider can get: probes, health, metrics, and errors of each kind."""
    get: list[str] = ["/livez", "/readyz", "/v1/health", "/metrics", "/v1/catalog",
                      "/v1/datasets/credit.scores", "/v1/datasets/nope.nope",
                      "/v1/ledger/entries/0", "/v1/ledger/receipts/0",
                      "/v1/ledger/usage?dataset=credit.scores", "/v1/nowhere",
                      "/v1/subscribe?sql=SELECT%201&purpose=x",
                      "/v1/subscribe?sql=SELECT%20*%20FROM%20credit.scores&purpose=x"]
    for path in get:
        yield path, httpx.get(hub.url + path, headers=headers, timeout=30)
    for sql in ("SELECT * FROM credit.scores", "SELECT * FROM traffic.passages",
                "SELECT * FROM read_csv('/etc/passwd')", "DROP TABLE x", "SELECT FROM (",
                "SELECT * FROM credit.scores c JOIN health.visits v ON true",
                "ATTACH 'city.db'"):
        yield sql, httpx.post(f"{hub.url}/v1/query", json={"sql": sql, "purpose": P},
                              headers=headers, timeout=30)
    yield "bad body", httpx.post(f"{hub.url}/v1/query", content=b"{", headers=headers)


@pytest.mark.parametrize("who", ["outsider", None])
def test_no_answer_names_a_path_host_or_unlisted_thing(hub: RunningHub, who: str | None
                                                       ) -> None:
    for member, purpose, sql in (  # others' exchanges, on unlisted sources too, in metrics
            ("app-medical", "pay-once-medical", "SELECT count(*) FROM credit.scores"),
            ("cockpit-city", P, "SELECT count(*) FROM traffic.checkpoints")):
        r = httpx.post(f"{hub.url}/v1/query", json={"sql": sql, "purpose": purpose},
                       headers={"Authorization": f"Bearer {hub.token(member)}"})
        assert r.status_code == 200, r.text
    headers = {"Authorization": f"Bearer {hub.token(who)}"} if who else {}
    hidden = _hidden(hub, who or "")
    assert "credit.scores" in hidden and "credit-bureau" in hidden  # the oracle is not empty
    seen = 0
    for what, r in _answers(hub, headers):
        seen += 1
        for h in hidden - {h for h in hidden if h in what}:  # an echo of the ask tells nothing
            assert h not in r.text, f"{what} ({r.status_code}) names {h!r}: {r.text[:300]}"
    assert seen >= 20


def test_health_detail_only_for_operators_and_auditors(hub: RunningHub) -> None:
    for member, detail in (("outsider", False), ("cockpit-city", False), ("app-parking", False),
                           ("data-bureau", True), ("auditor", True)):
        body = httpx.get(f"{hub.url}/v1/health",
                         headers={"Authorization": f"Bearer {hub.token(member)}"}).json()
        assert ("sources" in body and "ledger" in body) == detail, member
        assert body["summary"]["sources_up"] + body["summary"]["sources_down"] == \
            len(hub.service.catalog.sources)
    assert httpx.get(f"{hub.url}/v1/health").status_code == 401


class _Refusing(BaseHTTPRequestHandler):
    """A witness that refuses every checkpoint (``500``), as a broken or hostile peer."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(500)
        self.send_header("content-type", "text/plain")
        self.end_headers()
        self.wfile.write(b"no: /srv/witness/state.db at 10.9.8.7 is broken")

    def log_message(self, *args: Any) -> None:
        pass


def _with_witnesses(root: Path, peers: list[dict[str, str]]) -> None:
    doc = tomllib.loads((root / "city.toml").read_text())
    doc["ledger"] = {**doc.get("ledger", {}), "witnesses": peers}
    (root / "city.toml").write_text(tomli_w.dumps(doc))


def test_a_refusing_or_unreachable_witness_makes_the_hub_degraded(
        demo_dir: Path, city_tmp: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dead = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)  # a port nobody listens on
    dead_port = dead.server_address[1]
    dead.server_close()
    keys = [note.Signer.load_or_create(city_tmp / f"w{i}.key", f"witness-{i}",
                                       note.COSIGNATURE_V1) for i in (1, 2)]
    root = copy_demo_city(demo_dir, city_tmp / "city")
    _with_witnesses(root, [
        {"name": "witness-1", "url": f"http://127.0.0.1:{server.server_address[1]}/w",
         "key": keys[0].verifier.vkey},
        {"name": "witness-2", "url": f"http://127.0.0.1:{dead_port}/w",
         "key": keys[1].verifier.vkey}])
    try:
        with Node.open(root, serve=True, monitor=False) as node:
            hub = RunningHub(node, root)
            try:
                ops = {"Authorization": f"Bearer {hub.token('data-bureau')}"}
                cockpit = {"Authorization": f"Bearer {hub.token('cockpit-city')}"}
                r = httpx.post(f"{hub.url}/v1/query", headers=cockpit, json={
                    "sql": "SELECT count(*) FROM civil.districts", "purpose": P})
                assert r.status_code == 200  # a witness delays finality, never the log
                hub.wait_checkpoint()
                assert node.ledger is not None
                node.ledger.publish()  # the witnesses are asked (again) now
                health = httpx.get(f"{hub.url}/v1/health", headers=ops).json()
                assert health["status"] == "degraded", health
                led = health["ledger"]
                assert led["finality"] == "lost" and led["cosigned"] == 0
                assert led["witnesses"] == {"witness-1": "refused", "witness-2": "unreachable"}
                assert led["signing"] == "ok" and led["checkpoint_size"] >= 1
                summary = httpx.get(f"{hub.url}/v1/health", headers=cockpit).json()
                assert summary["status"] == "degraded" and "ledger" not in summary
                assert summary["summary"]["finality"] == "lost"
                assert summary["summary"]["lost"] == ["finality"]
                metrics = httpx.get(f"{hub.url}/metrics").text
                assert 'zhongshu_ledger_witnesses{state="refused"} 1' in metrics
                assert 'zhongshu_ledger_witnesses{state="unreachable"} 1' in metrics
                assert "\nzhongshu_ledger_final 0" in metrics
                for text in (str(health), metrics, str(summary)):  # no address, no answer
                    assert "10.9.8.7" not in text and "/srv/" not in text
                    assert str(dead_port) not in text and "127.0.0.1" not in text
                for text in (metrics, str(summary)):  # names for operators only
                    assert "witness-1" not in text and "witness-2" not in text
            finally:
                hub.stop()
    finally:
        server.shutdown()
        server.server_close()


def test_a_hub_that_cannot_sign_answers_receipts_503(demo_dir: Path, city_tmp: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root = copy_demo_city(demo_dir, city_tmp / "city")
    with Node.open(root, serve=True, monitor=False) as node:
        hub = RunningHub(node, root)
        try:
            ledger = node.ledger
            assert ledger is not None
            ledger.publisher.stop()  # no background signature: the next one is asked for
            receipt = ledger.record(entry.change("data-bureau", "test", {"subject": "x"}))

            def broken(text: str) -> str:
                raise OSError("signing device /dev/hsm0 unavailable")

            monkeypatch.setattr(ledger.log_key, "sign_note", broken)
            r = httpx.get(f"{hub.url}/v1/ledger/receipts/{receipt.index}",
                          headers={"Authorization": f"Bearer {hub.token('auditor')}"})
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "ledger_unavailable"
            assert "/dev/hsm0" not in r.text
            health = httpx.get(f"{hub.url}/v1/health", headers={
                "Authorization": f"Bearer {hub.token('data-bureau')}"}).json()
            assert health["status"] == "degraded" and health["ledger"]["signing"] != "ok"
            assert health["ledger"]["refused_to_sign"] >= 1
            assert "/dev/hsm0" not in str(health)
            monkeypatch.undo()
        finally:
            hub.stop()
