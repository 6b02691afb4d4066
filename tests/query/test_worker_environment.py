"""A DuckDB worker starts with none of the hub's environment but what it needs: read from the
kernel (``/proc/<pid>/environ``), not from the code that builds it."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zhongshu.config import HubSettings, load_city
from zhongshu.config.secrets import secret_env_name
from zhongshu.query import worker


def _kernel_environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_a_worker_holds_none_of_the_hubs_secrets(demo_dir: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    planted = {"ZHONGSHU_STORE_URL": f"postgresql://hub:{secrets.token_hex(8)}@db/hub",
               "ZHONGSHU_SECRET_SOMEONE_ELSE": secrets.token_hex(8),
               "ZHONGSHU_TOKEN_COCKPIT_CITY": secrets.token_hex(8),
               "AWS_SECRET_ACCESS_KEY": secrets.token_hex(8)}
    for k, v in planted.items():
        monkeypatch.setenv(k, v)
    city = load_city(demo_dir)
    sources = [(s, str(city.root), m.member.name) for m in city.members.values()
               for s in m.sources]
    spec = worker.WorkerSpec(sources, HubSettings(), bytes(32), None, 1)
    planted_file = tmp_path / f"planted-{secrets.token_hex(4)}"
    planted_file.write_text("the hub's own file")
    leaked = os.open(planted_file, os.O_RDONLY)
    os.set_inheritable(leaked, True)  # as a C library might leave one
    pool = worker.WorkerPool(spec, 1)
    try:
        table, _ = pool.execute("SELECT 42 AS answer", [], 5.0)
        assert table.to_pylist() == [{"answer": 42}]
        pid = pool._all[0].proc.pid
        env = _kernel_environment(pid)
        held = {os.readlink(f"/proc/{pid}/fd/{n}") for n in os.listdir(f"/proc/{pid}/fd")}
    finally:
        pool.close()
        os.close(leaked)
        planted_file.unlink()
    assert str(planted_file) not in held
    for value in planted.values():
        assert value not in "\0".join(f"{k}={v}" for k, v in env.items())
    assert env.get("PATH") == os.environ["PATH"]
    assert not [k for k in env if k.startswith("ZHONGSHU_") and k not in
                {secret_env_name(s.password_secret) for s, _, _ in sources
                 if s.password_secret}]


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,30}", fullmatch=True),
                       st.text(min_size=1, max_size=20), max_size=20))
def test_no_unlisted_variable_passes(hub_env: dict[str, str]) -> None:
    spec = worker.WorkerSpec([], HubSettings(), b"", None, 0)
    kept = worker.worker_environment(spec, hub_env)
    for k in kept:
        assert k in worker._KEPT_VARIABLES or k.startswith("LC_")
        assert not k.startswith("ZHONGSHU_")
