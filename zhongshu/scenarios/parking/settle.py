"""Leave first, pay later (先离场后付费): a driver's sessions across both operators, found by
the plate the driver gives (an equality lookup the hub answers on the plate's pseudonym), and
a daily settlement per operator joining the operators' sessions by pseudonym. The scenario
never receives a plate in clear: the hub masks every plate it sends.

The operators' systems record what each stay costs when the car leaves, not whether it was
paid, so a completed stay with a fee is *due* (what a driver settles later) and a stay without
an exit is *parked*."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from zhongshu.client import Hub

PLATE = re.compile(r"^[\u4e00-\u9fff][A-Z][A-Z0-9]{5,6}$")


def canonical_plate(text: str) -> str:
    """``浙A-12345`` / ``浙A 12345`` / ``浙a12345`` → ``浙A12345``.

    Raises:
        ValueError: not a plate.
    """
    plate = re.sub(r"[\s·\-]", "", text).upper()
    if not PLATE.match(plate):
        raise ValueError("not a licence plate (e.g. 浙A12345)")
    return plate


def sessions(hub: Hub, purpose: str, plate: str) -> dict[str, Any]:
    """The driver's stays at both operators: each with operator, garage, times, fee and
    status (due / parked), newest first, and the total due."""
    p = canonical_plate(plate)
    rows: list[dict[str, Any]] = []
    for r in hub.query(f"SELECT garage_no, entered, \"left\", fee_cents FROM "
                       f"parking_westlake.sessions WHERE plate = '{p}'", purpose).to_pylist():
        rows.append({"operator": "parking-westlake", "garage": r["garage_no"],
                     "entered": r["entered"], "left": r["left"],
                     "fee_yuan": None if r["fee_cents"] is None else r["fee_cents"] / 100})
    for r in hub.query(f"SELECT lot_id, t_in, t_out, amount_yuan FROM parking_qiantang.tickets "
                       f"WHERE car_plate = '{p}'", purpose).to_pylist():
        rows.append({"operator": "parking-qiantang", "garage": str(r["lot_id"]),
                     "entered": r["t_in"], "left": r["t_out"],
                     "fee_yuan": None if r["amount_yuan"] is None else float(r["amount_yuan"])})
    for r in rows:
        r["status"] = "parked" if r["left"] is None else "due"
    rows.sort(key=lambda r: (r["entered"], r["operator"], r["garage"]), reverse=True)
    due = sum(r["fee_yuan"] or 0 for r in rows if r["status"] == "due")
    return {"sessions": [{**r, "entered": r["entered"].isoformat(),
                          "left": r["left"].isoformat() if r["left"] else None} for r in rows],
            "due_yuan": round(due, 2)}


def settlement(hub: Hub, purpose: str, day: date) -> list[dict[str, Any]]:
    """Per operator, the stays that ended on ``day``: how many, the fees due, the drivers,
    and how many of them also parked with the other operator that day (joined on the plate
    pseudonym, never on a plate)."""
    lo, hi = f"TIMESTAMP '{day.isoformat()}'", f"TIMESTAMP '{(day + timedelta(days=1))}'"
    sql = f"""
WITH w AS (SELECT plate, fee_cents / 100.0 AS fee FROM parking_westlake.sessions
           WHERE "left" >= {lo} AND "left" < {hi}),
     q AS (SELECT car_plate AS plate, CAST(amount_yuan AS DOUBLE) AS fee
           FROM parking_qiantang.tickets WHERE t_out >= {lo} AND t_out < {hi})
SELECT 'parking-westlake' AS operator, count(*) AS stays, round(coalesce(sum(fee), 0), 2)
       AS due_yuan, count(DISTINCT plate) AS drivers,
       count(DISTINCT plate) FILTER (WHERE plate IN (SELECT plate FROM q)) AS also_other
FROM w
UNION ALL
SELECT 'parking-qiantang', count(*), round(coalesce(sum(fee), 0), 2), count(DISTINCT plate),
       count(DISTINCT plate) FILTER (WHERE plate IN (SELECT plate FROM w))
FROM q
ORDER BY 1"""
    rows: list[dict[str, Any]] = hub.query(sql, purpose).to_pylist()
    return rows
