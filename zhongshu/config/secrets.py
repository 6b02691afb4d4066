"""Secrets: passwords are named in member files and held in ``secrets.toml`` or the
environment, never written next to the configuration they unlock."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from zhongshu.config._toml import replace_file, toml_key, toml_string
from zhongshu.errors import ConfigError

# keys a member file may not hold: their values would be credentials
SECRET_KEYS = frozenset({"password", "passwd", "secret", "token", "dsn", "uri", "url"})


def secret_env_name(name: str) -> str:
    """The environment variable that holds secret ``name``.

    >>> secret_env_name("traffic-pw")
    'ZHONGSHU_SECRET_TRAFFIC_PW'
    """
    return "ZHONGSHU_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def read_secret(city_root: Path, name: str) -> str:
    """The value of secret ``name``: ``ZHONGSHU_SECRET_<NAME>`` or ``secrets.toml``.

    Raises:
        ConfigError: when the secret is set nowhere (the message never shows a value).
    """
    env_name = secret_env_name(name)
    if env_name in os.environ:
        return os.environ[env_name]
    path = city_root / "secrets.toml"
    if path.is_file():
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        value = data.get("secrets", {}).get(name)
        if value is not None:
            return str(value)
    raise ConfigError(f"secret `{name}` is not set: add it to secrets.toml under [secrets] or "
                      f"set {env_name}", path=str(path))


def stored_secret(city_root: Path, name: str) -> str | None:
    """The value ``secrets.toml`` holds for ``name`` (the environment not consulted), or
    None."""
    path = city_root / "secrets.toml"
    if not path.is_file():
        return None
    value = tomllib.loads(path.read_text(encoding="utf-8")).get("secrets", {}).get(name)
    return None if value is None else str(value)


def write_secret(city_root: Path, name: str, value: str) -> None:
    """Add secret ``name`` to ``secrets.toml`` (created mode 0600 if missing); every other
    line of the file stays as it was written.

    Raises:
        ConfigError: the file already holds ``name``, or is not valid TOML.
    """
    path = city_root / "secrets.toml"
    text = path.read_text(encoding="utf-8") if path.is_file() else (
        "# Secret values by name; keep this file out of version control.\n")
    try:
        if name in tomllib.loads(text).get("secrets", {}):
            raise ConfigError(f"secret `{name}` is already set; change it there",
                              path=str(path))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"not valid TOML: {e}", path=str(path)) from None
    line = f"{toml_key(name)} = {toml_string(value)}\n"
    header = re.search(r"(?m)^\[secrets\][ \t]*(#.*)?$", text)
    if header:  # keys right after the header belong to it, whatever tables follow
        end = header.end() + 1
        text = text[:end] + line + text[end:] if end <= len(text) else text + "\n" + line
    else:
        text = text + ("" if text.endswith("\n") else "\n") + "[secrets]\n" + line
    replace_file(path, text, 0o600)

