"""Who may call a scenario's services: the ``[[callers]]`` tables of a scenario member's file.

A scenario's service is the first segment of its path under ``/scenarios/<name>/``
(``eligibility`` for ``POST /scenarios/medical/eligibility``, ``ngsi-ld`` for the NGSI-LD
facade). Nobody may call a service that no table names — a new route is closed until its
member's file opens it::

    [[callers]]
    services = ["eligibility"]
    roles = ["hospital"]          # any member holding one of these roles
    rate_limit = 60               # calls per minute, per caller

    [[callers]]
    services = ["garages", "nearest", "ngsi-ld"]
    kinds = ["cockpit"]           # any member of these kinds
    members = ["gate-westlake"]   # these members by name

A caller is admitted by a table when it is named in ``members``, is of one of its ``kinds``,
or holds one of its ``roles``. People (residents signed in with the city's identity provider)
are not members; they will be admitted by a key of their own in the same table (issue 17,
part 2), never by ``members``, ``kinds`` or ``roles``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from zhongshu.config._base import NAME, MemberKind, Strict
from zhongshu.config._lines import line_of
from zhongshu.errors import ConfigError

if TYPE_CHECKING:
    from zhongshu.config.schema import City

SERVICE = r"^[a-z0-9][a-z0-9_.-]*$"


class CallerRule(Strict):
    """Members admitted to some services of a scenario, and how often each may call."""

    services: list[str] = Field(min_length=1, description="the scenario's services (first "
                                "path segment under /scenarios/NAME/)")
    members: list[str] = Field(default=[], description="members admitted by name")
    kinds: list[MemberKind] = Field(default=[], description="members admitted by kind")
    roles: list[str] = Field(default=[], description="members admitted by a role they hold")
    rate_limit: int | None = Field(default=None, ge=1, description="calls per minute per "
                                   "caller (each caller counted apart); none: unlimited")

    @model_validator(mode="after")
    def _check(self) -> CallerRule:
        if not (self.members or self.kinds or self.roles):
            raise ValueError("a callers table admits nobody: give `members`, `kinds` or "
                             "`roles`")
        for s in self.services:
            if not re.match(SERVICE, s):
                raise ValueError(f"service `{s}` is not a path segment (lower-case letters, "
                                 "digits, `-`, `_`, `.`)")
        for m in self.members:
            if not re.match(NAME, m):
                raise ValueError(f"`{m}` is not a member name")
        return self

    def admits(self, name: str, kind: str, roles: Iterable[str]) -> bool:
        """Whether the member ``name`` (of ``kind``, holding ``roles``) is admitted.

        >>> rule = CallerRule(services=["eligibility"], roles=["hospital"])
        >>> rule.admits("hospital-h01", "consumer", ["hospital"])
        True
        >>> rule.admits("outsider", "enterprise", [])
        False
        """
        return name in self.members or kind in self.kinds or \
            any(r in self.roles for r in roles)


def rule_for(rules: Iterable[CallerRule], service: str, name: str, kind: str,
             roles: Iterable[str]) -> CallerRule | None:
    """The first table admitting ``name`` to ``service``, or None (not declared: refused).

    >>> rules = [CallerRule(services=["report"], kinds=["cockpit"]),
    ...          CallerRule(services=["eligibility"], members=["hospital-h01"])]
    >>> rule_for(rules, "eligibility", "cockpit-city", "cockpit", []) is None
    True
    >>> rule_for(rules, "report", "cockpit-city", "cockpit", []).services
    ['report']
    """
    roles = list(roles)
    for rule in rules:
        if service in rule.services and rule.admits(name, kind, roles):
            return rule
    return None


def check_services(city: City, member: str, offered: Iterable[str]) -> None:
    """Every service the ``[[callers]]`` of ``member`` name is one its scenario offers (run
    when the scenario is mounted: only then are its routes known).

    Raises:
        ConfigError: naming the member file and the line of the unknown service.
    """
    have = set(offered)
    mf = city.members.get(member)
    for i, rule in enumerate(mf.callers if mf is not None else []):
        for s in rule.services:
            if s not in have:
                path = city.member_files[member]
                raise ConfigError(
                    f"callers: the scenario of `{member}` offers no service `{s}` (it offers: "
                    f"{', '.join(sorted(have))})", path=str(path),
                    line=line_of(path.read_text(encoding="utf-8"), ("callers", i, "services")))
