"""A city on a fresh PostgreSQL store, set up as an operator would: the schema applied with
``zhongshu db upgrade``, members' tokens issued with ``zhongshu members token``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def zs(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``zhongshu ARGS`` in a process of its own, with ``env`` added to this one's."""
    return subprocess.run([sys.executable, "-m", "zhongshu.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=300)


def set_up(root: Path, env: dict[str, str], members: tuple[str, ...]) -> dict[str, str]:
    """Apply the schema to the store ``env`` names for the city at ``root``; a new token of
    each of ``members``."""
    up = zs("db", "upgrade", "--dir", str(root), env=env)
    assert up.returncode == 0, up.stderr
    tokens = {}
    for member in members:
        t = zs("members", "token", member, "--dir", str(root), env=env)
        assert t.returncode == 0, t.stderr
        tokens[member] = t.stdout.strip().splitlines()[-1]
    return tokens
