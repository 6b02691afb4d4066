"""C2SP signed notes, checkpoints and cosignatures (Ed25519).

* a checkpoint body is ``origin\\nsize\\nbase64(root)\\n`` (c2sp.org/tlog-checkpoint);
* the log signs it as a note: ``— name base64(keyID ‖ sig)`` with keyID =
  ``SHA-256(name ‖ "\\n" ‖ 0x01 ‖ pub)[:4]`` (c2sp.org/signed-note);
* a witness cosigns ``cosignature/v1\\ntime T\\n`` ‖ body, line ``— name base64(keyID ‖ T
  (u64 big-endian) ‖ sig)`` with keyID over 0x04 (c2sp.org/tlog-cosignature);
* a verifier key (vkey) is ``name+hex(keyID)+base64(alg ‖ pub)``.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from zhongshu.config.keyfiles import key_bytes
from zhongshu.errors import LedgerInvalid

DASH = "\u2014"
ED25519 = 0x01
COSIGNATURE_V1 = 0x04


def key_id(name: str, alg: int, pub: bytes) -> bytes:
    """The 4-byte key ID of a note key."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + pub).digest()[:4]


def _raw(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    """A public note key: who signs under ``name``, and how (``alg``)."""

    name: str
    alg: int
    pub: bytes

    @property
    def id(self) -> bytes:
        return key_id(self.name, self.alg, self.pub)

    @property
    def vkey(self) -> str:
        """The key as a C2SP vkey string (what operators exchange and pin)."""
        return (f"{self.name}+{self.id.hex()}+"
                f"{base64.b64encode(bytes([self.alg]) + self.pub).decode()}")

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """Read a vkey string.

        Raises:
            LedgerInvalid: it is not ``name+hexid+base64key`` of an Ed25519 note or cosignature key.
        """
        try:
            name, hid, b64 = vkey.strip().split("+", 2)
            blob = base64.b64decode(b64, validate=True)
        except ValueError:
            raise LedgerInvalid("a verifier key reads `name+keyid+base64key`") from None
        if len(blob) != 33 or blob[0] not in (ED25519, COSIGNATURE_V1) or not name:
            raise LedgerInvalid(f"verifier key for `{name}` is not an Ed25519 (0x01) or "
                            "cosignature/v1 (0x04) key")
        v = cls(name, blob[0], blob[1:])
        if v.id.hex() != hid.lower():
            raise LedgerInvalid(f"verifier key for `{name}`: the key ID does not match the key")
        return v

    def verify(self, message: bytes, sig: bytes) -> bool:
        """Whether ``sig`` is this key's Ed25519 signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.pub).verify(sig, message)
            return True
        except (InvalidSignature, ValueError):
            return False


class Signer:
    """A private note key (log key, alg 0x01; or witness key, alg 0x04)."""

    def __init__(self, name: str, alg: int, private: Ed25519PrivateKey) -> None:
        self.name = name
        self.alg = alg
        self._key = private
        self.verifier = Verifier(name, alg, _raw(private.public_key()))

    @classmethod
    def load_or_create(cls, path: Path, name: str, alg: int) -> Signer:
        """The key kept in ``path`` (32-byte seed, mode 0600), created on first use (by one
        process only, when several start at once: :func:`~zhongshu.config.keyfiles.key_bytes`)."""
        seed = key_bytes(path)
        if len(seed) != 32:
            raise LedgerInvalid(f"{path.name} is not a 32-byte Ed25519 seed")
        return cls(name, alg, Ed25519PrivateKey.from_private_bytes(seed))

    def sign_note(self, body: str) -> str:
        """The signature line of this log key over a note body."""
        assert self.alg == ED25519
        sig = self._key.sign(body.encode())
        return f"{DASH} {self.name} {base64.b64encode(self.verifier.id + sig).decode()}\n"

    def cosign(self, body: str, timestamp: int | None = None) -> str:
        """The cosignature/v1 line of this witness key over a checkpoint body."""
        assert self.alg == COSIGNATURE_V1
        t = int(time.time()) if timestamp is None else timestamp
        sig = self._key.sign(f"cosignature/v1\ntime {t}\n".encode() + body.encode())
        blob = self.verifier.id + struct.pack(">Q", t) + sig
        return f"{DASH} {self.name} {base64.b64encode(blob).decode()}\n"


@dataclass(frozen=True)
class Checkpoint:
    """A parsed checkpoint note."""

    origin: str
    size: int
    root: bytes
    body: str
    signatures: tuple[str, ...]  # signature lines, each ending with "\n"

    @property
    def text(self) -> str:
        """The whole note: body, blank line, signature lines."""
        return self.body + "\n" + "".join(self.signatures)

    def with_signatures(self, lines: list[str]) -> Checkpoint:
        """The same checkpoint with ``lines`` added (duplicates dropped)."""
        seen = list(self.signatures)
        seen += [line for line in lines if line not in seen]
        return Checkpoint(self.origin, self.size, self.root, self.body, tuple(seen))

    def signed_by(self, key: Verifier) -> bool:
        """Whether some signature line is a valid log signature by ``key``."""
        return any(self._check(line, key) is not None for line in self.signatures)

    def cosigned_by(self, key: Verifier) -> int | None:
        """The timestamp of a valid cosignature by witness ``key``, or None."""
        for line in self.signatures:
            t = self._check(line, key)
            if t is not None:
                return t
        return None

    def _check(self, line: str, key: Verifier) -> int | None:
        try:
            _, name, b64 = line.rstrip("\n").split(" ", 2)
            blob = base64.b64decode(b64, validate=True)
        except ValueError:
            return None
        if name != key.name or blob[:4] != key.id:
            return None
        if key.alg == ED25519:
            return 0 if len(blob) == 68 and key.verify(self.body.encode(), blob[4:]) else None
        if len(blob) != 76:
            return None
        (t,) = struct.unpack(">Q", blob[4:12])
        msg = f"cosignature/v1\ntime {t}\n".encode() + self.body.encode()
        return t if key.verify(msg, blob[12:]) else None


def body(origin: str, size: int, root: bytes) -> str:
    """The checkpoint body (three lines)."""
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Read a checkpoint note.

    Raises:
        LedgerInvalid: not a checkpoint (three body lines, a blank line, signature lines).
    """
    head, sep, sigs = text.partition("\n\n")
    if not sep:
        raise LedgerInvalid("a checkpoint is a body, a blank line and signature lines")
    lines = head.split("\n")
    if len(lines) < 3 or not lines[0]:
        raise LedgerInvalid("a checkpoint body has an origin, a size and a root hash")
    try:
        size = int(lines[1])
        root = base64.b64decode(lines[2], validate=True)
    except ValueError:
        raise LedgerInvalid("a checkpoint's size is a decimal and its root base64") from None
    if size < 0 or len(root) != 32 or lines[1] != str(size):
        raise LedgerInvalid("a checkpoint's size is a decimal and its root 32 bytes")
    sig_lines = [line + "\n" for line in sigs.split("\n") if line]
    if not sig_lines or any(not s.startswith(DASH + " ") for s in sig_lines):
        raise LedgerInvalid("a checkpoint's signature lines start with `— `")
    return Checkpoint(lines[0], size, root, head + "\n", tuple(sig_lines))


def b64(h: bytes) -> str:
    """Standard base64 of a hash, as checkpoints and witness requests carry it."""
    return base64.b64encode(h).decode()
