"""Demo member tokens, kept one per file under ``state/tokens/`` (mode 0600)."""

from __future__ import annotations

import os
from pathlib import Path

from zhongshu.catalog.catalog import Catalog
from zhongshu.errors import NotFound
from zhongshu.policy.identity import issue_token, token_hash


def tokens_dir(city_dir: Path) -> Path:
    """Where the demo keeps its members' tokens."""
    return city_dir / "state" / "tokens"


def ensure_tokens(catalog: Catalog, city_dir: Path) -> Path:
    """Give every member a valid token file (existing valid ones are kept); return the folder."""
    folder = tokens_dir(city_dir)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    for name in catalog.members:
        path = folder / f"{name}.token"
        if path.is_file() and catalog.store.token_member(
                token_hash(path.read_text().strip())) == name:
            continue
        token = issue_token(catalog, name, label="demo")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
    return folder


def read_token(city_dir: Path, member: str) -> str:
    """The demo token of ``member``.

    Raises:
        NotFound: no token file (the hint names ``zhongshu demo`` only for a demo city's
            folder, or one that holds no city yet).
    """
    path = tokens_dir(city_dir) / f"{member}.token"
    if not path.is_file():
        issue = f"`zhongshu members token {member} --dir {city_dir}` issues one"
        if (city_dir / "demo.json").is_file() or not (city_dir / "city.toml").is_file():
            issue = f"run `zhongshu demo --dir {city_dir}` first, or {issue}"
        raise NotFound(f"no token for `{member}` in {path.parent}; {issue} (pass it with "
                       "--token)")
    return path.read_text().strip()
