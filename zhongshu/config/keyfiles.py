"""Files of a hub's ``state/`` folder made on first use — the log, witness, pseudonym,
subject and federation keys, the log key's pin — each made by one process only.

Replicas of one hub may share the folder and start at the same moment. A file is written
whole into a hidden file beside it and then linked under its name, which fails if another
process linked first; so every process that starts reads the same, complete file — never a
key of its own, never a half-written one.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

__all__ = ["create_once", "key_bytes"]


def create_once(path: Path, data: bytes, mode: int = 0o600) -> bool:
    """Make ``path`` hold ``data`` (with ``mode``; the folder made if missing) unless it
    exists; True if this call made it, False if it was there, or another process made it
    first (then it holds what that process wrote, whole)."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: made in place, exclusively
            return _create_in_place(path, data, mode)
        return True
    finally:
        os.unlink(tmp)


def _create_in_place(path: Path, data: bytes, mode: int) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return True


def key_bytes(path: Path, size: int = 32) -> bytes:
    """The bytes kept in ``path``: ``size`` random bytes written there (mode 0600) when there
    is no such file yet (:func:`create_once`). A file of another length is returned as it is
    (the caller says what is wrong with it)."""
    if not path.exists():
        create_once(path, secrets.token_bytes(size))
    return path.read_bytes()
