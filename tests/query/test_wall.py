"""The second wall for any user: DuckDB workers confined by Landlock to their sources, whether
the hub runs as root or not and wherever the city folder is (a 0700 folder included)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.checksums import city_checksums
from tests.conftest import RunningHub, copy_demo_city
from zhongshu.config import load_city
from zhongshu.errors import SecondWallUnavailable
from zhongshu.node import Node
from zhongshu.policy.identity import Caller
from zhongshu.query import wall
from zhongshu.query.service import QueryService

# statements the execution layer is handed directly, without the firewall: each must fail
# (the uid-based layer alone would let the world-readable ones through)
ESCAPES = [
    "ATTACH '{state}/hub.db' AS meta1 (TYPE sqlite); SELECT * FROM meta1.tokens",
    "SELECT * FROM sqlite_scan('{state}/hub.db', 'tokens')",
    "SELECT * FROM read_text('{state}/pseudonym.key')",
    "SELECT * FROM read_blob('{state}/pseudonym.key')",
    "SELECT * FROM read_csv('{root}/secrets.toml')",
    "SELECT * FROM read_text('{root}/members/traffic-police.toml')",
    "SELECT * FROM read_text('{root}/city.toml')",
    "SELECT * FROM read_csv('/etc/shadow')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_text('/etc/passwd')",
    "COPY (SELECT 1 AS x) TO '{state}/evil.csv'",
    "COPY (SELECT 1 AS x) TO '{root}/data/civil-affairs/evil.csv'",
    "COPY (SELECT 1 AS x) TO '/tmp/zhongshu-wall-evil.csv'",
    "ATTACH '{root}/data/traffic-police.sqlite' AS rw (TYPE sqlite); DELETE FROM rw.passages",
    "SET enable_external_access = true",
]
SOURCE_QUERY = 'SELECT count(*) AS n FROM "memory"."src_civil_affairs_db"."districts"'

needs_landlock = pytest.mark.skipif(wall.abi() < 1 and os.environ.get("CI") != "true",
                                    reason="this kernel offers no Landlock")


@pytest.fixture
def private_city(demo_dir: Path) -> Iterator[Path]:
    """A copy of the demo city under a folder only its owner may enter (a home folder)."""
    base = Path(tempfile.mkdtemp(prefix="zs-private-"))
    base.chmod(0o700)
    try:
        yield copy_demo_city(demo_dir, base / "city")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _attempts(root: Path) -> dict[str, object]:
    """Open the hub's parts on ``root`` and hand each escape to the DuckDB workers directly."""
    from zhongshu.query.worker import WorkerError

    city = load_city(root)
    with Node.open(city, serve=True, monitor=False) as node:
        engine = node.query.executor.engine
        state = city.state_dir
        answered = []
        for stmt in ESCAPES:
            try:
                engine.execute(stmt.format(root=root, state=state), [], 10)
                answered.append(stmt)
            except WorkerError:
                pass
        table, _ = engine.execute(SOURCE_QUERY, [], 10)
        return {"answered": answered, "districts": table.column("n").to_pylist(),
                "wall": engine.wall, "runs_as": engine.runs_as,
                "health": node.query.second_wall()}


def _check(root: Path, result: dict[str, object], before: dict[str, str]) -> None:
    assert result["answered"] == []
    assert result["districts"] == [6]  # the sources themselves are still read
    assert isinstance(result["wall"], str) and result["wall"].startswith("Landlock")
    assert not Path("/tmp/zhongshu-wall-evil.csv").exists()
    assert not (root / "data" / "civil-affairs" / "evil.csv").exists()
    assert city_checksums(load_city(root)) == before


@needs_landlock
def test_a_private_folder_as_root(private_city: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("runs as root; the unprivileged case is the next test")
    before = city_checksums(load_city(private_city))
    result = _attempts(private_city)
    _check(private_city, result, before)
    assert result["runs_as"] == "uid 0"  # nobody cannot enter the folder; Landlock holds
    assert result["health"]["held"] is True  # type: ignore[index]


PROBE = textwrap.dedent("""
    import json, site, sys
    from pathlib import Path
    site.addsitedir(sys.argv[3])
    sys.path.insert(0, sys.argv[2])
    from tests.query.test_wall import _attempts
    print(json.dumps(_attempts(Path(sys.argv[1]))))
""")
TEST_USER = "zs-wall-test"


def _runnable_by_others(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


def _interpreter() -> str:
    """A Python of this version that any user may run (this one may live in root's home)."""
    for candidate in (Path(sys._base_executable).resolve(),
                      Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")):
        if candidate.is_file() and _runnable_by_others(candidate):
            return str(candidate)
    pytest.fail("no Python an unprivileged user may run: install this Python outside a "
                "private folder")


def _unprivileged_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        TEST_USER], check=True, capture_output=True)
        return pwd.getpwnam(TEST_USER)


@needs_landlock
def test_a_private_folder_as_an_unprivileged_user(private_city: Path) -> None:
    """The hub run by an ordinary user who owns a 0700 city folder: no privilege to drop, and
    the wall holds all the same."""
    if os.geteuid() != 0:
        result = _attempts(private_city)  # we are that user
        _check(private_city, result, city_checksums(load_city(private_city)))
        return
    user = _unprivileged_user()
    base = private_city.parent
    before = city_checksums(load_city(private_city))
    for path in [base, *base.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
    repo = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHONGSHU_")}
    env.update(HOME=str(base), PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
         _interpreter(), "-c", PROBE, str(private_city), str(repo),
         sysconfig.get_paths()["purelib"]],
        capture_output=True, text=True, env=env, timeout=300, cwd=base)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for path in [base, *base.rglob("*")]:  # back to root for the checksums and the cleanup
        os.chown(path, 0, 0, follow_symlinks=False)
    _check(private_city, result, before)
    assert result["runs_as"] == f"uid {user.pw_uid}"


CONFINED = textwrap.dedent("""
    import encodings.idna, json, socket, sys  # idna: what connect() imports, before the wall
    from pathlib import Path
    from zhongshu.query.wall import confine
    from zhongshu.sources import Reach
    inside, scratch, open_port, shut_port = sys.argv[1:5]
    confine(Reach((Path(inside),), (int(open_port),)), Path(scratch))
    out = {}
    def attempt(name, fn):
        try:
            fn()
            out[name] = "ok"
        except OSError as e:
            out[name] = e.errno
    attempt("read inside", lambda: open(Path(inside) / "a.csv").read())
    attempt("write inside", lambda: open(Path(inside) / "b.csv", "w").write("x"))
    attempt("write scratch", lambda: open(Path(scratch) / "s.bin", "w").write("x"))
    attempt("read outside", lambda: open("/etc/hostname").read())
    attempt("list outside", lambda: __import__("os").listdir("/"))
    attempt("connect allowed", lambda: socket.create_connection(("127.0.0.1", int(open_port))))
    attempt("connect other", lambda: socket.create_connection(("127.0.0.1", int(shut_port))))
    print(json.dumps(out))
""")


@needs_landlock
def test_confine_lets_a_process_reach_only_what_it_was_given(tmp_path: Path) -> None:
    """The kernel's answers are the oracle: permission denied outside the reach."""
    inside, scratch = tmp_path / "source", tmp_path / "scratch"
    inside.mkdir()
    scratch.mkdir()
    (inside / "a.csv").write_text("a\n1\n")
    with socket.socket() as allowed, socket.socket() as other:
        for s in (allowed, other):
            s.bind(("127.0.0.1", 0))
            s.listen()
        proc = subprocess.run([sys.executable, "-c", CONFINED, str(inside), str(scratch),
                               str(allowed.getsockname()[1]), str(other.getsockname()[1])],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    eacces = 13
    assert got["read inside"] == "ok" and got["write scratch"] == "ok"
    assert got["write inside"] == eacces and got["read outside"] == eacces
    assert got["list outside"] == eacces
    if wall.abi() >= 4:
        assert got["connect allowed"] == "ok" and got["connect other"] == eacces


def test_no_wall_no_service_unless_told(demo_dir: Path, city_tmp: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the workers cannot be confined the hub refuses to start, saying why and what to
    do; told ``unsafe_single_wall`` it serves, and its health says the guarantee is lost."""
    from zhongshu.query import worker

    # the workers are other processes: they learn of the missing kernel feature from the pool
    real = worker.WorkerPool.__init__

    def pool_without_wall(self: worker.WorkerPool, spec: worker.WorkerSpec, size: int) -> None:
        real(self, spec, size)
        self.wall, self.wall_problem = None, "this kernel offers no Landlock (test)"

    monkeypatch.setattr(worker.WorkerPool, "__init__", pool_without_wall)
    root = copy_demo_city(demo_dir, city_tmp / "city")
    with pytest.raises(SecondWallUnavailable, match="--unsafe-single-wall"):
        with Node.open(load_city(root), serve=True, monitor=False) as node:
            _ = node.query
    monkeypatch.setenv("ZHONGSHU_UNSAFE_SINGLE_WALL", "true")
    with Node.open(load_city(root), serve=True, monitor=False) as node:
        assert node.query.second_wall() == {
            "held": False, "confinement": None, "runs_as": node.query.executor.engine.runs_as,
            "problem": "this kernel offers no Landlock (test)"}
        hub = RunningHub(node, root)
        try:
            for member, detail in (("data-bureau", True), ("cockpit-city", False)):
                body = httpx.get(f"{hub.url}/v1/health", headers={
                    "Authorization": f"Bearer {hub.token(member)}"}).json()
                assert body["status"] == "degraded"
                assert body["summary"]["second_wall"] == "lost"
                assert "second_wall" in body["summary"]["lost"]
                assert ("second_wall" in body) is detail
        finally:
            hub.stop()


def test_health_says_the_wall_holds(hub: RunningHub) -> None:
    body = httpx.get(f"{hub.url}/v1/health", headers={
        "Authorization": f"Bearer {hub.token('data-bureau')}"}).json()
    assert body["summary"]["second_wall"] == "held"
    assert body["second_wall"]["held"] is True
    assert body["second_wall"]["confinement"].startswith("Landlock ABI")


@pytest.mark.server
@needs_landlock
def test_servers_are_reached_through_the_wall(real_service: QueryService) -> None:
    """PostgreSQL and MariaDB sources attach behind the wall (their ports allowed, their
    drivers' lazy imports done before it) and answer."""
    engine = real_service.executor.engine
    assert engine.failed == {}
    assert engine.wall is not None and "TCP to ports 3306, 5432" in engine.wall
    caller = Caller(real_service.catalog.members["cockpit-city"])
    for sql in ("SELECT count(*) FROM parking_westlake.garages",
                "SELECT count(*) FROM traffic.passages p JOIN parking_westlake.garages g "
                "ON p.camera_id = g.garage_no"):
        assert real_service.run(caller, sql, "city-operations").table.num_rows == 1


def test_a_source_without_its_password_is_down_alone(demo_dir: Path, city_tmp: Path) -> None:
    """Passwords are read before the wall: a source whose secret is set nowhere is down
    ("cannot be read"-like reason from the closed set), and the worker and every other
    source work."""
    extra = ('[member]\nname = "extra-dept"\nkind = "department"\ntitle = "Extra"\n\n'
             '[[sources]]\nname = "extra-db"\nkind = "postgres"\ndatabase = "test"\n'
             'user = "postgres"\npassword_secret = "extra-db-password-set-nowhere"\n')
    root = copy_demo_city(demo_dir, city_tmp / "city")
    (root / "members" / "extra-dept.toml").write_text(extra)
    with Node.open(load_city(root), serve=True, monitor=False) as node:
        engine = node.query.executor.engine
        assert "extra-db" in engine.failed and engine.wall is not None
        table, _ = engine.execute(SOURCE_QUERY, [], 10)
        assert table.column("n").to_pylist() == [6]
        assert node.query.health()["extra-db"].startswith("down: ")
