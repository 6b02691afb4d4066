"""The shipped ``deploy/haproxy.cfg`` run by a test: Debian's tools found (or the test skipped
on a laptop without them, failed under ``CI=true``), HAProxy started in the foreground with
addresses from the environment and stopped afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def tool(name: str) -> str:
    """The path of Debian's ``name`` (``haproxy``, ``systemd-analyze``)."""
    path = shutil.which(name) or f"/usr/sbin/{name}"
    if not os.access(path, os.X_OK):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not installed (.ci/run installs it)")
        pytest.skip(f"{name} is not installed (apt-get install {name})")
    return path


@contextmanager
def haproxy(env: dict[str, str], cwd: Path | None = None,
            log: IO[bytes] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """HAProxy with ``deploy/haproxy.cfg`` as shipped, ``env`` (``ZHONGSHU_LB_*``,
    ``ZHONGSHU_REPLICA_*``) added to the environment; its output to ``log`` (default:
    dropped)."""
    out = log if log is not None else subprocess.DEVNULL
    lb = subprocess.Popen([tool("haproxy"), "-db", "-f", str(DEPLOY / "haproxy.cfg")], cwd=cwd,
                          env={**os.environ, **env}, stdout=out, stderr=out)
    try:
        yield lb
    finally:
        lb.terminate()
        lb.wait(10)
