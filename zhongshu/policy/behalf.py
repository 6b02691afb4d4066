"""On behalf of: a scenario member names the caller it acts for, and the hub checks it.

A scenario (parking, pay-once medical…) serves callers of its own — an exit gate, a hospital —
and asks the hub under its own member's grants. So that the hub's ledger says for whom, the
scenario names its authenticated caller in each request (``Zhongshu-On-Behalf-Of``). The hub
accepts that name only when

* the asking member is of kind ``scenario`` (nobody else may speak for another member: a
  department or a cockpit naming one is refused, not ignored), and
* the named caller is a member of the city that the scenario member's file declares as a
  caller of at least one of its services (``[[callers]]``, :mod:`zhongshu.config.callers`).

So only the scenario member can name a caller, and only one it declared; what it reads is
still governed by its own grants, never by the caller's. People (issue 17, part 2) will be
named here too, by a form of their own that no member name can take.
"""

from __future__ import annotations

import dataclasses

from zhongshu.catalog.catalog import Catalog
from zhongshu.errors import BehalfRefused
from zhongshu.policy.identity import Caller

MAX_NAME = 100  # a member name is short; anything longer is refused without echoing it


def acting_for(catalog: Catalog, who: Caller, named: str) -> Caller:
    """``who`` acting for the caller ``named``.

    Raises:
        BehalfRefused: ``who`` is not a scenario member, or ``named`` is no member of the
            city, or not a declared caller of ``who``'s services.
    """
    if who.member.kind != "scenario":
        raise BehalfRefused(f"member `{who.name}` is of kind `{who.member.kind}`; only "
                            "scenario members may act on behalf of a caller (drop the "
                            "Zhongshu-On-Behalf-Of header)")
    member = catalog.members.get(named) if len(named) <= MAX_NAME else None
    if member is None:
        raise BehalfRefused("the caller named in Zhongshu-On-Behalf-Of is no member of this "
                            "city")
    mf = catalog.city.members.get(who.name)
    rules = mf.callers if mf is not None else []
    if not any(r.admits(member.name, member.kind, member.roles) for r in rules):
        raise BehalfRefused(f"member `{member.name}` is not a declared caller of scenario "
                            f"member `{who.name}` (its `[[callers]]` tables)")
    return dataclasses.replace(who, on_behalf_of=member.name)
