"""Key files made on first use, by replicas starting at the same moment on one folder:
every process reads one and the same complete key; a file system without hard links still
gets one key; a short secret key is refused."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from zhongshu.config.keyfiles import create_once, key_bytes
from zhongshu.errors import ConfigError
from zhongshu.policy.masking import PseudonymKeys
from zhongshu.policy.subjects import SubjectKey

RACE = """
import hashlib, sys, time
from pathlib import Path
from zhongshu.federation.keys import load_key, public_raw
from zhongshu.ledger.note import ED25519, Signer
from zhongshu.policy.masking import PseudonymKeys
from zhongshu.policy.subjects import SubjectKey
state, start, rounds = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
while time.time() < start:
    pass
seen = hashlib.sha256()
for i in range(rounds):  # many files, the same order in every process: many collisions
    seen.update(Signer.load_or_create(state / f"ledger{i}.key", "o", ED25519).verifier.id)
    seen.update(PseudonymKeys.load(state / f"pseudonym{i}.key").key("k|fixed"))
    seen.update(SubjectKey.load(state / f"subject{i}.key").tag("phone", "x").encode())
    if i % 20 == 0:
        seen.update(public_raw(load_key(state / f"federation{i}.key")))
print(seen.hexdigest())
"""


def test_processes_starting_together_share_one_key_of_each(tmp_path: Path) -> None:
    import time

    state, rounds = tmp_path / "state", 400
    start = time.time() + 2.0  # every process is up and spinning when the moment comes
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(state), repr(start),
                               str(rounds)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(6)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-2000:] for _, e in outs]
    said = {o.strip() for o, _ in outs}
    assert len(said) == 1, said  # every process read the same keys, all of them
    names = sorted(p.name for p in state.iterdir())
    assert len(names) == 3 * rounds + rounds // 20  # no hidden leftovers
    for name in names:
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600
        if not name.startswith("federation"):
            assert (state / name).stat().st_size == 32


def test_create_once_keeps_the_first_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "k"
    assert create_once(path, b"first", 0o640)
    assert not create_once(path, b"second")
    assert path.read_bytes() == b"first" and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert key_bytes(path) == b"first"  # an existing file is read, whatever its length
    assert len(key_bytes(tmp_path / "new", 48)) == 48


def test_a_file_system_without_hard_links_still_gets_one_key(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    import os

    def no_links(src: object, dst: object) -> None:
        raise PermissionError(1, "Operation not permitted")  # as on some network shares

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "k"
    assert create_once(path, b"first") and not create_once(path, b"second")
    assert path.read_bytes() == b"first" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["k"]


@pytest.mark.parametrize("load", [PseudonymKeys.load, SubjectKey.load])
def test_a_short_secret_key_is_refused(load: object, tmp_path: Path) -> None:
    """An empty or truncated pseudonym or subject key would make its digests guessable."""
    path = tmp_path / "pseudonym.key"
    for bad in (b"", b"x" * 16):
        path.write_bytes(bad)
        with pytest.raises(ConfigError, match="must hold 32 random bytes"):
            load(path)  # type: ignore[operator]
