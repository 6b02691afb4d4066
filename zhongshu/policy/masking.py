"""Masking: the SQL each mask kind puts in a governed view, and keyed pseudonyms.

DuckDB 1.5.5 has no HMAC function, so the hub registers one (``zs_pseudonym``) as a vectorised
Arrow UDF. Its first argument is a *key id* (``consumer|purpose|rotation``), never a key: the
hub derives the key from its own secret, so rewritten SQL (shown by ``policy explain``) reveals
nothing. Callers cannot call it themselves: it is not on the firewall's allow-list.

>>> from zhongshu.config import Mask
>>> from sqlglot import exp
>>> m = Mask(kind="partial", separator="·")
>>> mask_expr(exp.column("plate"), m, "VARCHAR", "k").sql("duckdb")
"CASE WHEN plate IS NULL THEN NULL ELSE SUBSTRING(plate, 1, 2) || '·****' || RIGHT(plate, 2) END"
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import sqlglot
from sqlglot import exp

from zhongshu.config import Mask
from zhongshu.config.keyfiles import key_bytes
from zhongshu.errors import ConfigError

PSEUDONYM_FN = "zs_pseudonym"
_CHINA = timedelta(hours=8)


def mask_expr(col: exp.Expr, mask: Mask, col_type: str, key_id: str) -> exp.Expr:
    """The expression that replaces ``col`` (of DuckDB type ``col_type``) under ``mask``."""
    c = col.sql("duckdb")
    if mask.kind == "aggregate_only":
        return col  # the firewall lets it be read only inside aggregates over k rows
    if mask.kind == "redact":
        return exp.cast(exp.null(), col_type)
    if mask.kind == "pseudonym":
        return exp.func(PSEUDONYM_FN, exp.Literal.string(key_id), exp.cast(col, "VARCHAR"))
    if mask.kind == "partial":
        if mask.pattern == "birth_year":
            sql = f"CASE WHEN length({c}) = 18 THEN substr({c}, 7, 4) ELSE NULL END"
        else:
            fill = (mask.separator + mask.fill).replace("'", "''")
            start = f"substr({c}, 1, {mask.keep_start}) || " if mask.keep_start else ""
            end = f" || right({c}, {mask.keep_end})" if mask.keep_end else ""
            sql = f"CASE WHEN {c} IS NULL THEN NULL ELSE {start}'{fill}'{end} END"
        return sqlglot.parse_one(sql, read="duckdb")
    # generalize
    if mask.unit:
        return sqlglot.parse_one(f"date_trunc('{mask.unit}', {c})", read="duckdb")
    if mask.digits is not None:
        return sqlglot.parse_one(f"round({c}, {mask.digits})", read="duckdb")
    step = mask.step or 1
    return sqlglot.parse_one(f"CAST(round({c} / {step}) * {step} AS {col_type})",
                             read="duckdb")


def key_id(consumer: str, purpose: str, rotate: str | None) -> str:
    """The id of the pseudonym key of a consumer × purpose (× rotation period kind)."""
    return f"{consumer}|{purpose}|{rotate or 'fixed'}"


class PseudonymKeys:
    """Derives pseudonym keys from the hub's secret (``state/pseudonym.key``, 0600)."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path) -> PseudonymKeys:
        """Keys from the hub secret in ``path``, created (0600) on first use."""
        secret = key_bytes(path)
        if len(secret) != 32:  # a short or empty key would make its digests guessable
            raise ConfigError(f"{path.name} must hold 32 random bytes (it holds "
                              f"{len(secret)}); restore it from a backup", path=str(path))
        return cls(secret)

    @classmethod
    def from_secret(cls, secret: bytes) -> PseudonymKeys:
        """Keys from a secret already read (the DuckDB workers get it this way)."""
        return cls(secret)

    def key(self, kid: str, now: datetime | None = None) -> bytes:
        """The key for ``kid`` now (rotating ids change with the day or month, China time)."""
        rotate = kid.rsplit("|", 1)[-1]
        period = ""
        if rotate != "fixed":
            local = (now or datetime.now(UTC)) + _CHINA
            period = local.strftime("%Y-%m-%d" if rotate == "day" else "%Y-%m")
        full = f"{kid}|{period}"
        k = self._cache.get(full)
        if k is None:
            k = hmac.new(self.secret, full.encode(), hashlib.sha256).digest()
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[full] = k
        return k

    def pseudonym(self, kid: str, value: str | None) -> str | None:
        """The pseudonym of one value: 128 bits of HMAC-SHA256, hex."""
        if value is None:
            return None
        return hmac.new(self.key(kid), value.encode(), hashlib.sha256).hexdigest()[:32]

    def udf(self, kids: pa.Array, values: pa.Array) -> pa.Array:
        """The vectorised DuckDB function: one Arrow batch at a time."""
        out: list[str | None] = []
        key_cache: dict[str, bytes] = {}
        for kid, value in zip(kids.to_pylist(), values.to_pylist(), strict=True):
            if value is None or kid is None:
                out.append(None)
                continue
            k = key_cache.get(kid)
            if k is None:
                k = key_cache[kid] = self.key(kid)
            out.append(hmac.new(k, value.encode(), hashlib.sha256).hexdigest()[:32])
        return pa.array(out, type=pa.string())
