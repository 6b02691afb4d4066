"""Pay-once hospital visits (舒心就医 · 最多付一次): a patient with enough credit sees the
doctor and pays once at the end. The hospital's system asks with the patient's id number;
the scenario finds the credit record and earlier visits by an equality lookup the hub answers
on the id number's pseudonym — it never receives an id number from the hub — and every such
exchange is on the ledger, where the credit bureau and the hospital can see it.

Eligible: a credit record with a score of at least ``MIN_SCORE`` and a positive limit; the
credit limit is the bureau's own ``limit_yuan``."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from zhongshu.client import Hub
from zhongshu.errors import ZhongshuError
from zhongshu.scenarios import Scenario

MIN_SCORE = 600
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


class EligibilityIn(BaseModel):
    id_number: str = Field(min_length=18, max_length=18,
                           description="the patient's 18-character resident id number")


def valid_id_number(text: str) -> bool:
    """Whether ``text`` is an 18-character resident id number with a valid ISO 7064 MOD 11-2
    check character (GB 11643)."""
    body, check = text[:17], text[17:].upper()
    if len(text) != 18 or not body.isdigit():
        return False
    return "10X98765432"[sum(int(c) * w for c, w in zip(body, _WEIGHTS, strict=True)) % 11] \
        == check


def eligibility(hub: Hub, purpose: str, id_number: str) -> dict[str, Any]:
    """Eligible or not, the credit limit, why, and how many earlier visits the hospitals
    recorded (the answer holds no id number)."""
    idn = id_number.upper()
    credit = hub.query(f"SELECT score, limit_yuan FROM credit.scores WHERE id_number = "
                       f"'{idn}'", purpose).to_pylist()
    visits = hub.query(f"SELECT count(*) AS n FROM health.visits WHERE id_number = '{idn}'",
                       purpose).to_pylist()[0]["n"]
    if not credit:
        return {"eligible": False, "credit_limit_yuan": 0.0, "earlier_visits": visits,
                "reason": "no credit record"}
    score, limit = credit[0]["score"], float(credit[0]["limit_yuan"])
    ok = score >= MIN_SCORE and limit > 0
    return {"eligible": ok, "credit_limit_yuan": limit if ok else 0.0, "earlier_visits": visits,
            "reason": "credit score and limit sufficient" if ok else
            f"credit score below {MIN_SCORE}" if score < MIN_SCORE else "no credit limit"}


def report(hub: Hub, purpose: str, day: date) -> list[dict[str, Any]]:
    """Per hospital, the visits that ended on ``day``: how many, the share paid once, and
    the minutes in hospital of pay-once visits against pay-each-step ones (the time saved)."""
    lo, hi = f"TIMESTAMP '{day.isoformat()}'", f"TIMESTAMP '{day + timedelta(days=1)}'"
    minutes = "date_diff('second', v.arrived_at, v.left_at) / 60.0"
    rows: list[dict[str, Any]] = hub.query(f"""
SELECT h.hospital_id, h.name, count(*) AS visits,
       avg(CASE WHEN v.paid_once THEN 1.0 ELSE 0.0 END) AS share_paid_once,
       avg({minutes}) FILTER (WHERE v.paid_once) AS minutes_paid_once,
       avg({minutes}) FILTER (WHERE NOT v.paid_once) AS minutes_each_step
FROM health.visits v JOIN health.hospitals h ON v.hospital_id = h.hospital_id
WHERE v.left_at >= {lo} AND v.left_at < {hi}
GROUP BY 1, 2 ORDER BY 1""", purpose).to_pylist()
    for r in rows:
        once, each = r["minutes_paid_once"], r["minutes_each_step"]
        r["minutes_saved"] = None if once is None or each is None else round(each - once, 1)
        for k in ("share_paid_once", "minutes_paid_once", "minutes_each_step"):
            r[k] = None if r[k] is None else round(float(r[k]), 3)
    return rows


def router(hub: Hub, purpose: str, home: Path) -> APIRouter:
    """The scenario's API (mounted at /scenarios/medical)."""
    api = APIRouter()

    def refused(e: ZhongshuError) -> JSONResponse:
        return JSONResponse({"error": e.to_dict()}, status_code=e.status)

    @api.post("/eligibility")
    def check(body: EligibilityIn) -> Any:
        """Whether the patient may pay once, and the credit limit (sent by the hospital's
        system)."""
        if not valid_id_number(body.id_number):
            return JSONResponse({"error": {"code": "bad_request", "message":
                                           "not a resident id number (check character)"}},
                                status_code=400)
        try:
            return eligibility(hub, purpose, body.id_number)
        except ZhongshuError as e:
            return refused(e)

    @api.get("/report")
    def daily(day: Annotated[date, Query()]) -> Any:
        """Per hospital: visits, share paid once, time saved."""
        try:
            return {"day": day.isoformat(), "hospitals": report(hub, purpose, day)}
        except ZhongshuError as e:
            return refused(e)

    return api


scenario = Scenario(name="medical", member="app-medical", purpose="pay-once-medical",
                    router=router)
