"""This hub's federation key: one Ed25519 key pair, kept in a PEM file (``[federation]
key``, default ``state/federation.key``), made on first use with mode 0600.

It signs every request this hub makes to a peer (RFC 9421, as its member there) and every
catalog it publishes to a peer; peers pin its public key in their ``[[federation.peers]]``.
The ledger's checkpoints are signed by the ledger's own key (``ledger.pin``), not this one.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from zhongshu.config.keyfiles import create_once
from zhongshu.errors import ConfigError


def load_key(path: Path) -> Ed25519PrivateKey:
    """The private key in ``path``, made (0600) when the file does not exist (by one process
    only: :func:`~zhongshu.config.keyfiles.create_once`).

    Raises:
        ConfigError: the file is not an Ed25519 private key in PEM.
    """
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        if create_once(path, pem):
            return key
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError):
        raise ConfigError("not an Ed25519 private key in PEM", path=str(path)) from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ConfigError("the federation key must be an Ed25519 key", path=str(path))
    return loaded


def public_raw(key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key."""
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)


def public_key_b64(key: Ed25519PrivateKey) -> str:
    """The public key as ``[[federation.peers]] public_key`` takes it (base64, raw)."""
    return base64.b64encode(public_raw(key)).decode()


def key_id(member: str, public: bytes) -> str:
    """The key id a hub registers ``public`` under for ``member``
    (``policy.identity.register_key`` computes the same)."""
    return f"{member}:{hashlib.sha256(public).hexdigest()[:16]}"
