"""The shipped deployment files are accepted by the tools that run them: ``haproxy -c`` for
``deploy/haproxy.cfg`` (with its defaults, and with addresses from the environment), and
``systemd-analyze verify`` for the replica unit."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.balancer import DEPLOY, haproxy, tool

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("env", [{}, {"ZHONGSHU_REPLICA_1": "10.0.0.11:8400",
                                      "ZHONGSHU_LB_HTTP": "0.0.0.0:80"}])
def test_haproxy_accepts_the_shipped_configuration(env: dict[str, str], tmp_path: Path
                                                   ) -> None:
    r = subprocess.run([tool("haproxy"), "-c", "-f", str(DEPLOY / "haproxy.cfg")],
                       capture_output=True, text=True, cwd=tmp_path,  # paths: beside the file
                       env={**os.environ, **env})
    assert r.returncode == 0 and "valid" in r.stdout, r.stdout + r.stderr
    assert "WARNING" not in r.stdout + r.stderr, r.stdout + r.stderr


def test_haproxy_refuses_a_broken_copy(tmp_path: Path) -> None:
    """(the check above can fail: a typo in a copy of the file is caught)"""
    shutil.copytree(DEPLOY, tmp_path / "deploy")
    cfg = tmp_path / "deploy" / "haproxy.cfg"
    cfg.write_text(cfg.read_text().replace("balance leastconn", "balance leastcon", 1))
    r = subprocess.run([tool("haproxy"), "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert r.returncode != 0


def test_the_error_files_are_the_protocols_json_errors() -> None:
    import json

    for name in ("502", "503", "504"):
        raw = (DEPLOY / "errors" / f"{name}.http").read_bytes()
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        assert lines[0].startswith("HTTP/1.1 50")
        headers = dict(ln.split(": ", 1) for ln in lines[1:])
        assert headers["Content-Type"] == "application/json"
        assert int(headers["Content-Length"]) == len(body)
        error = json.loads(body)["error"]
        assert error["code"] in ("replica_unavailable", "replica_timeout") and error["message"]


def test_systemd_accepts_the_replica_unit(tmp_path: Path) -> None:
    """The unit as shipped, with the two paths an installation sets (where the hub is
    installed, where the replica's environment file is) pointed at this checkout."""
    analyze = tool("systemd-analyze")
    unit = (DEPLOY / "systemd" / "zhongshu@.service").read_text()
    exe = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "zhongshu"
    if not exe.exists():
        exe = ROOT / ".venv" / "bin" / "zhongshu"
    unit = unit.replace("/opt/zhongshu/bin/zhongshu", str(exe)).replace(
        "/etc/zhongshu/replica-%i.env", str(DEPLOY / "systemd" / "replica.env"))
    for name in ("zhongshu@.service", "zhongshu@1.service"):
        (tmp_path / name).write_text(unit)
        r = subprocess.run([analyze, "verify", str(tmp_path / name)], capture_output=True,
                           text=True, cwd=tmp_path)
        assert r.returncode == 0 and not r.stderr.strip(), r.stdout + r.stderr


def test_with_no_replica_up_clients_get_the_protocols_503(tmp_path: Path) -> None:
    """The shipped file run as is, its replicas' ports closed: a client is told
    ``503 replica_unavailable`` in the protocol's JSON (the error files are found beside the
    configuration, whatever the working folder)."""
    import time

    import httpx

    from tests.conftest import free_port

    port = free_port()
    env = {"ZHONGSHU_LB_HTTP": f"127.0.0.1:{port}", "ZHONGSHU_LB_WIRE": f"127.0.0.1:{free_port()}",
           **{f"ZHONGSHU_REPLICA_{i}": f"127.0.0.1:{free_port()}" for i in (1, 2, 3)}}
    with haproxy(env, cwd=tmp_path) as lb:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/v1/query", json={"sql": "SELECT 1"},
                               timeout=10)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and lb.poll() is None
                time.sleep(0.1)
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == "application/json"
        assert r.json()["error"]["code"] == "replica_unavailable"


def test_a_stopping_replica_finishes_its_open_requests_behind_the_balancer(tmp_path: Path
                                                                         ) -> None:
    """A replica stopping (SIGTERM: it stops listening and finishes what it is answering —
    uvicorn's way) is marked down by the balancer's checks, and its open request still gets
    its answer: the balancer does not cut it. A stand-in replica answers ``/slow`` after 4 s;
    it stops listening 1 s in, so the checks fail meanwhile."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import httpx

    from tests.conftest import free_port

    class Replica(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path == "/slow":
                time.sleep(4)
            body = b'{"status": "ready"}' if self.path == "/readyz" else b'{"rows": [[42]]}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    replica = ThreadingHTTPServer(("127.0.0.1", 0), Replica)
    replica.daemon_threads = True
    threading.Thread(target=replica.serve_forever, daemon=True).start()
    port = free_port()
    env = {"ZHONGSHU_LB_HTTP": f"127.0.0.1:{port}", "ZHONGSHU_LB_WIRE": f"127.0.0.1:{free_port()}",
           "ZHONGSHU_REPLICA_1": f"127.0.0.1:{replica.server_address[1]}",
           **{f"ZHONGSHU_REPLICA_{i}": f"127.0.0.1:{free_port()}" for i in (2, 3)}}
    try:
        with haproxy(env, cwd=tmp_path) as lb:
            deadline = time.monotonic() + 20
            while True:  # the replica marked up (two checks a second apart)
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline and lb.poll() is None
                time.sleep(0.2)
            got: dict[str, object] = {}

            def client() -> None:
                r = httpx.get(f"http://127.0.0.1:{port}/slow", timeout=30)
                got.update(status=r.status_code, body=r.text)

            asking = threading.Thread(target=client)
            asking.start()
            time.sleep(1.0)
            replica.socket.close()  # stops listening: the checks fail, it is marked down
            asking.join(30)
            assert got == {"status": 200, "body": '{"rows": [[42]]}'}, got
            r = httpx.get(f"http://127.0.0.1:{port}/readyz")  # and it no longer gets requests
            assert r.status_code == 503 and r.json()["error"]["code"] == "replica_unavailable"
    finally:
        replica.server_close()
