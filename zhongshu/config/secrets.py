"""Secrets: passwords are named in member files and held in ``secrets.toml`` or the
environment, never written next to the configuration they unlock."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

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
