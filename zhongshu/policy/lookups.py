"""Lookups of pseudonymised values: how a looked-up value is normalised, and the budget of
distinct values a consumer may look up per purpose.

A lookup is the one place where a caller's value meets the pseudonym key: the firewall's
``pseudonym_lookups`` rule turns ``plate = '浙A12345'`` (``=``, ``<>``, ``IN``, anywhere in the
query: WHERE, CASE WHEN, a join condition, a select list) into a comparison of pseudonyms and
records a ``LookupSite`` for each value. Every other comparison of such a column with a value
(``CASE plate WHEN …``, a join to ``VALUES``, a scalar subquery, an expression) compares the
pseudonym with the caller's *raw* text and can never match: it looks nothing up.

At each run the values of a plan's sites (its literals, and the parameters the query layer
lifted out of the text) are normalised here, and it is the **normalised** value that the
engine pseudonymises — what is counted is exactly what is probed. ``LookupBudget.spend``
counts the distinct values per consumer × purpose over a rolling 24 h (a value already
looked up in the window costs nothing) and refuses the whole query, counting nothing, once
the grant's ``lookups_per_day`` would be passed.

>>> normalise("plate", "浙a-123 45"), normalise("plate", "浙A.12345")
('浙A12345', '浙A12345')
>>> normalise("id_number", "33010619900101123x")
'33010619900101123X'
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from zhongshu.errors import LookupBudgetExceeded
from zhongshu.policy.context import LookupSite
from zhongshu.stores import LookupCounts

WINDOW_S = 86_400.0
"""The rolling window of a lookup budget: 24 h."""
_PLATE_DROP = re.compile(r"[\s\-.·_]+")
_SPACES = re.compile(r"\s+")


def normalise(kind: str, value: Any) -> str:
    """The text a value is looked up (and counted) as, for a column normalised as ``kind``:
    ``plate`` — spaces, hyphens, dots, middle dots and underscores removed, upper case;
    ``id_number`` — spaces removed, upper case (the check letter ``X``); ``exact`` — the
    text as written."""
    text = value if isinstance(value, str) else str(value)
    if kind == "plate":
        return _PLATE_DROP.sub("", text).upper()
    if kind == "id_number":
        return _SPACES.sub("", text).upper()
    return text


@dataclass(frozen=True)
class Spent:
    """The parameters to run a plan with (lookups normalised), once its lookups are paid."""

    params: tuple[Any, ...]
    looked_up: int  # distinct values this run looked up


class LookupBudget:
    """Spends a consumer's lookup budget from ``counts`` (shared by every replica and grant
    reload using the same store).

    Args:
        counts: the store of looked-up values per key (``zhongshu.stores.LookupCounts``).
        secret: the hub's secret: values are stored as keyed digests, never in clear.
        clock: seconds since the epoch (tests pass their own).
    """

    def __init__(self, counts: LookupCounts, secret: bytes,
                 clock: Callable[[], float] = time.time) -> None:
        self.counts = counts
        self._key = hmac.new(secret, b"zhongshu lookup budget", hashlib.sha256).digest()
        self._clock = clock

    def digest(self, key: str, kind: str, value: str) -> str:
        """The stored form of one looked-up value: keyed, so the store reveals no value."""
        return hmac.new(self._key, f"{key}\x00{kind}\x00{value}".encode(),
                        hashlib.sha256).hexdigest()[:32]

    def spend(self, purpose: str, sites: Iterable[LookupSite], params: tuple[Any, ...],
              index: Callable[[str], int], also: Mapping[str, str] | None = None) -> Spent:
        """Pay for the lookups of one run for ``purpose``: each site from the budget of its
        ``caller`` (the member the hub records as the asker; a row scope's owner for the
        scope's lookups), and from the budget of whom ``also`` names for that caller.

        Args:
            sites: the plan's lookup sites.
            params: the run's parameters, in placeholder order.
            index: the position in ``params`` of a placeholder name.
            also: member → whom to charge as well: a scenario member looking up on behalf of
                one of its callers spends that caller's budget and its own (its own bounds
                everything its pseudonym key reveals, whichever caller it names).

        Returns:
            The parameters with every looked-up one normalised, and how many distinct values
            were looked up.

        Raises:
            LookupBudgetExceeded: for some member, the distinct values looked up in the last
                24 h with this run's new ones would pass the smallest ``lookups_per_day`` of
                the grants looked up through; the query is not run (and the refused member's
                values are not counted).
        """
        sites = list(sites)
        if not sites:
            return Spent(params, 0)
        out = list(params)
        digests: dict[str, set[str]] = {}
        limits: dict[str, int] = {}
        normalised: set[int] = set()
        for s in sites:
            if s.parameter is not None:
                i = index(s.parameter)
                if i not in normalised:
                    out[i] = normalise(s.normalise, out[i])
                    normalised.add(i)
                value = out[i]
            else:
                assert s.value is not None
                value = s.value
            extra = (also or {}).get(s.caller)
            for who in (s.caller, extra) if extra and extra != s.caller else (s.caller,):
                key = f"{who}|{purpose}"
                digests.setdefault(key, set()).add(self.digest(key, s.normalise, value))
                limits[key] = min(limits.get(key, s.grant.lookups_per_day),
                                  s.grant.lookups_per_day)
        now = self._clock()
        for key in sorted(digests):
            used = self.counts.spend(key, sorted(digests[key]), limits[key], WINDOW_S, now)
            if used is not None:
                who = key.rsplit("|", 1)[0]
                raise LookupBudgetExceeded(
                    f"`{who}` has looked up {used} distinct pseudonymised values for purpose "
                    f"`{purpose}` in the last 24 h; this query's {len(digests[key])} would "
                    f"pass the grant's budget of {limits[key]} a day. Look up values you "
                    "hold, a few at a time, or ask the owner for a larger `lookups_per_day`")
        return Spent(tuple(out), sum(len(d) for d in digests.values()))
