"""In-memory stores: the same contracts as the SQLite ones, for one process (tests, and a
hub's nonces, sessions and rate counters by default: they need not outlive the process)."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any

from zhongshu.stores.base import ChangeHook


class MemoryMetadataStore:
    """The metadata store in dictionaries (thread-safe)."""

    def __init__(self) -> None:
        self.on_change: ChangeHook | None = None
        self._lock = threading.Lock()
        self._members: dict[str, dict[str, Any]] = {}
        self._tokens: dict[str, dict[str, Any]] = {}
        self._keys: dict[str, dict[str, Any]] = {}
        self._grants: dict[str, dict[str, Any]] = {}
        self._changes: list[dict[str, Any]] = []
        self._datasets: dict[str, tuple[str, str]] = {}
        self._seen: dict[str, set[str]] = {}

    def upsert_member(self, name: str, kind: str, title: str, roles: list[str]) -> None:
        with self._lock:
            self._members[name] = {"name": name, "kind": kind, "title": title,
                                   "roles": json.dumps(roles)}

    def add_token(self, token_hash: str, member: str, label: str = "",
                  expires_at: float | None = None) -> None:
        with self._lock:
            if token_hash in self._tokens:
                raise ValueError("a token with this hash already exists")
            self._tokens[token_hash] = {"member": member, "label": label,
                                        "expires_at": expires_at, "revoked_at": None}

    def token_member(self, token_hash: str, now: float | None = None) -> str | None:
        now = time.time() if now is None else now
        t = self._tokens.get(token_hash)
        if t is None or t["revoked_at"] is not None or \
                (t["expires_at"] is not None and t["expires_at"] <= now):
            return None
        return str(t["member"])

    def revoke_tokens(self, member: str, prefix: str | None = None) -> int:
        n = 0
        with self._lock:
            for h, t in self._tokens.items():
                if t["member"] == member and t["revoked_at"] is None and \
                        (not prefix or h.startswith(prefix.replace("%", ""))):
                    t["revoked_at"] = time.time()
                    n += 1
        return n

    def add_key(self, key_id: str, member: str, public_key: bytes) -> None:
        with self._lock:
            if key_id in self._keys:
                raise ValueError(f"key `{key_id}` already exists")
            self._keys[key_id] = {"member": member, "public_key": bytes(public_key)}

    def key(self, key_id: str) -> tuple[str, bytes] | None:
        k = self._keys.get(key_id)
        return (str(k["member"]), bytes(k["public_key"])) if k else None

    def record_change(self, actor: str, action: str, subject: str,
                      details: dict[str, Any] | None = None) -> int:
        plain = json.loads(json.dumps(details or {}, default=str))
        with self._lock:
            seq = len(self._changes) + 1
            self._changes.append({"seq": seq, "at": time.time(), "actor": actor,
                                  "action": action, "subject": subject, "details": plain})
        if self.on_change is not None:
            self.on_change(actor, action, subject, copy.deepcopy(plain))
        return seq

    def changes(self, since: int = 0) -> list[dict[str, Any]]:
        return [copy.deepcopy(c) for c in self._changes[max(since, 0):]]

    def version(self) -> int:
        return len(self._changes)

    def add_grant(self, grant_id: str, owner: str, spec: dict[str, Any], actor: str) -> None:
        with self._lock:
            if grant_id in self._grants:
                raise ValueError(f"grant `{grant_id}` already exists")
            self._grants[grant_id] = {"owner": owner,
                                      "spec": json.loads(json.dumps(spec, default=str)),
                                      "created_by": actor, "revoked": False}

    def revoke_grant(self, grant_id: str, actor: str) -> bool:
        with self._lock:
            g = self._grants.get(grant_id)
            if g is None or g["revoked"]:
                return False
            g["revoked"] = True
            return True

    def stored_grants(self) -> list[tuple[str, str, dict[str, Any], str]]:
        return [(gid, g["owner"], copy.deepcopy(g["spec"]), g["created_by"])
                for gid, g in self._grants.items() if not g["revoked"]]

    def members(self) -> list[dict[str, Any]]:
        now = time.time()
        out = []
        for name in sorted(self._members):
            valid = sum(1 for t in self._tokens.values() if t["member"] == name
                        and t["revoked_at"] is None
                        and (t["expires_at"] is None or t["expires_at"] > now))
            out.append({**self._members[name], "tokens": valid})
        return out

    def record_dataset(self, name: str, owner: str, source: str, listed: bool, status: str,
                       reason: str, observed: dict[str, str]) -> None:
        self._datasets[name] = (status, reason)
        self._seen.setdefault(name, set()).update(observed)

    def dataset_status(self, name: str) -> tuple[str, str] | None:
        return self._datasets.get(name)

    def dataset_seen(self, name: str) -> set[str]:
        return set(self._seen.get(name, ()))

    def close(self) -> None:
        pass


class MemoryNonceStore:
    """Nonces in an insertion-ordered dictionary, forgotten past their time."""

    def __init__(self) -> None:
        self._until: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def spend(self, nonce: str, now: float, ttl_s: float) -> bool:
        with self._lock:
            for old in [n for n, u in self._until.items() if u < now]:
                del self._until[old]
            if nonce in self._until:
                return False
            self._until[nonce] = now + ttl_s
            return True

    def close(self) -> None:
        pass


class MemorySessionStore:
    """Sessions in a dictionary (a restarted process signs its viewers out)."""

    def __init__(self) -> None:
        self._by_hash: dict[bytes, tuple[str, str, float]] = {}
        self._lock = threading.Lock()

    def put(self, sid_hash: bytes, member: str, token_hash: str, expires_at: float,
            now: float) -> None:
        with self._lock:
            self._by_hash = {h: v for h, v in self._by_hash.items() if v[2] > now}
            self._by_hash[sid_hash] = (member, token_hash, expires_at)

    def get(self, sid_hash: bytes, now: float) -> tuple[str, str, float] | None:
        hit = self._by_hash.get(sid_hash)
        return hit if hit is not None and hit[2] > now else None

    def delete(self, sid_hash: bytes) -> None:
        with self._lock:
            self._by_hash.pop(sid_hash, None)

    def close(self) -> None:
        pass


class MemoryRateCounters:
    """Sliding windows as deques of hit times."""

    def __init__(self) -> None:
        self._windows: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, limit: int, window_s: float, now: float) -> float | None:
        with self._lock:
            window = self._windows.setdefault(key, deque())
            while window and window[0] <= now - window_s:
                window.popleft()
            if len(window) >= limit:
                return window_s - (now - window[0])
            window.append(now)
            return None

    def close(self) -> None:
        pass


class MemoryLookupCounts:
    """Distinct values per key as dictionaries of value → last seen."""

    def __init__(self) -> None:
        self._seen: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def _live(self, key: str, window_s: float, now: float) -> dict[str, float]:
        seen = {v: t for v, t in self._seen.get(key, {}).items() if t > now - window_s}
        self._seen[key] = seen
        return seen

    def spend(self, key: str, values: Sequence[str], limit: int, window_s: float,
              now: float) -> int | None:
        with self._lock:
            seen = self._live(key, window_s, now)
            if len(seen.keys() | set(values)) > limit:
                return len(seen)
            for v in values:
                seen[v] = now
            return None

    def count(self, key: str, window_s: float, now: float) -> int:
        with self._lock:
            return len(self._live(key, window_s, now))

    def close(self) -> None:
        pass
