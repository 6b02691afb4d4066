"""The log key's pin: the verifier key a city's ledger must be signed with, kept outside the
state folder, so a replaced ``state/ledger.key`` cannot vouch for the log it re-signed.

A city pins its log key in one of two places, both beside ``city.toml`` and never in
``state/``:

- ``[ledger] log_key`` in ``city.toml`` (the operator's own, e.g. copied from a witness's
  configuration or from a record kept elsewhere), or else
- :data:`PIN_FILE` (``ledger.pin``), written by the hub when it *creates* its log key (first
  start, trust on first use) and kept with the city's configuration (``zhongshu init``'s
  ``.gitignore`` leaves it in; only ``state/`` and ``secrets.toml`` are ignored).

The hub refuses to open a ledger whose key differs from the pin, and ``zhongshu ledger
verify --dir`` checks every checkpoint against the pin — or fails when there is none. A pin
protects as well as the place it is kept: whoever can rewrite both ``state/`` and the pin
can rewrite history, which is why a verifier may bring its own with ``--log-key``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from zhongshu.config import City
from zhongshu.config.keyfiles import create_once
from zhongshu.errors import LedgerInvalid
from zhongshu.ledger import note

log = logging.getLogger("zhongshu.ledger.pin")
PIN_FILE = "ledger.pin"
_HEADER = ("# The verifier key this city's ledger is signed with, recorded when the hub created\n"
           "# its log key. Keep it with the city's configuration (not in state/): "
           "`zhongshu ledger\n# verify --dir` checks the log against it, and the hub refuses "
           "to start with another key.\n")


@dataclass(frozen=True)
class Pin:
    """A pinned log key and where it was read (``city.toml`` or ``ledger.pin``)."""

    key: note.Verifier
    where: str


def _parse(text: str, where: str) -> note.Verifier:
    try:
        key = note.Verifier.parse(text)
    except LedgerInvalid as e:
        raise LedgerInvalid(f"the log key pinned in {where}: {e.message}") from None
    if key.alg != note.ED25519:
        raise LedgerInvalid(f"the key pinned in {where} is a witness key, not a log key")
    return key


def read(city: City) -> Pin | None:
    """The city's pinned log key, or None when neither ``city.toml`` nor ``ledger.pin``
    pins one.

    Raises:
        LedgerInvalid: a pin does not parse, or the two places pin different keys.
    """
    configured = (Pin(_parse(city.ledger.log_key, "city.toml [ledger] log_key"), "city.toml")
                  if city.ledger.log_key else None)
    path = city.root / PIN_FILE
    recorded = None
    if path.exists():
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines()
                 if ln.strip() and not ln.lstrip().startswith("#")]
        if len(lines) != 1:
            raise LedgerInvalid(f"{PIN_FILE} must hold exactly one verifier key line")
        recorded = Pin(_parse(lines[0], PIN_FILE), PIN_FILE)
    if configured and recorded and configured.key != recorded.key:
        raise LedgerInvalid(f"city.toml [ledger] log_key and {PIN_FILE} pin different log "
                            "keys; keep the one you trust and remove the other")
    return configured or recorded


def record(city: City, key: note.Verifier) -> None:
    """Write ``ledger.pin`` for a log key just created — never over an existing pin: if
    another process (a replica starting at the same moment) pinned first, its pin is checked
    against ``key`` instead.

    Raises:
        LedgerInvalid: the pin found is of another key.
    """
    path = city.root / PIN_FILE
    if create_once(path, (_HEADER + key.vkey + "\n").encode(), 0o644):
        log.info("log key pinned in %s: %s", PIN_FILE, key.vkey)
        return
    pinned = read(city)
    if pinned is None or pinned.key.vkey != key.vkey:
        raise LedgerInvalid(f"{PIN_FILE} pins another log key than state/ledger.key")


def settle(city: City, key: note.Verifier, created: bool) -> None:
    """Check the hub's log key against the city's pin; pin a key just ``created``.

    Raises:
        LedgerInvalid: the key is not the pinned one (``state/ledger.key`` was replaced, or
            the origin changed): the hub must not sign with it.
    """
    pin = read(city)
    if pin is None:
        if created:
            record(city, key)
        else:
            log.warning("the log key is not pinned (no [ledger] log_key in city.toml, no %s): "
                        "`zhongshu ledger verify --dir` fails until you pin it; check "
                        "`zhongshu ledger key` against your records, then "
                        "`zhongshu ledger pin`", PIN_FILE)
        return
    if pin.key != key:
        raise LedgerInvalid(f"the log key in state/ledger.key is not the one pinned in "
                            f"{pin.where} ({pin.key.vkey}): the key file was replaced, the "
                            "state folder lost or the origin changed; restore the pinned key "
                            "— or, if this is a new ledger on purpose, remove the pin and "
                            "tell your verifiers and witnesses the new key")
