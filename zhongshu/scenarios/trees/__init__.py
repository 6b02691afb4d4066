"""Count the trees (数清楚树): a new city's first job may be counting its trees. Counts by
district, street, species, age class and health; trees per km² and per resident (joining
the civil registry); changes between two surveys — read through the hub as ``app-trees``.
A survey is imported by the parks department into its own folder (``zhongshu trees
import``, :mod:`zhongshu.scenarios.trees.survey`) and read by the hub like any source. The
scenario publishes its results per survey as ``trees.density``, a dataset of its own member
kept in its own store (:mod:`zhongshu.scenarios.trees.store`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from zhongshu.client import Hub
from zhongshu.errors import ZhongshuError
from zhongshu.scenarios import Scenario
from zhongshu.scenarios.trees import store
from zhongshu.scenarios.trees.survey import SURVEY_NAME

DERIVED = "trees.density"
AGE_CLASS = ("CASE WHEN year(current_date) - planted_year < 10 THEN 'young' "
             "WHEN year(current_date) - planted_year < 30 THEN 'mature' ELSE 'old' END")
BY = {"district": "district", "street": "street", "species": "species",
      "age_class": AGE_CLASS, "health": "health"}


SurveyQ = Annotated[str | None, Query(max_length=41, description="a survey (default: the "
                                                                   "inventory)")]


def _trees(survey: str | None) -> str:
    """The relation of one survey's trees (the inventory when ``survey`` is None)."""
    if survey is None:
        return "parks.trees"
    if not SURVEY_NAME.match(survey):
        raise ValueError("not a survey name")
    return f"(SELECT * FROM parks.tree_surveys WHERE survey = '{survey}')"


def counts(hub: Hub, purpose: str, by: str, survey: str | None) -> list[dict[str, Any]]:
    """Trees per value of ``by`` (age classes: young < 10 years ≤ mature < 30 ≤ old)."""
    rows: list[dict[str, Any]] = hub.query(
        f"SELECT {BY[by]} AS {by}, count(*) AS trees FROM {_trees(survey)} t "
        "GROUP BY 1 ORDER BY 2 DESC, 1", purpose).to_pylist()
    return rows


def density(hub: Hub, purpose: str, level: str, survey: str | None) -> list[dict[str, Any]]:
    """Per district (or street): trees, residents, trees per 1,000 residents, and per km²
    (districts: the registry gives their area)."""
    if level == "district":
        sql = f"""SELECT d.district, d.name_zh, coalesce(t.trees, 0) AS trees, d.population,
  d.area_km2, round(coalesce(t.trees, 0) / d.area_km2, 3) AS trees_per_km2,
  round(1000.0 * coalesce(t.trees, 0) / d.population, 3) AS trees_per_1000_residents
FROM civil.districts d LEFT JOIN (SELECT district, count(*) AS trees FROM {_trees(survey)} x
  GROUP BY 1) t ON t.district = d.district ORDER BY 1"""
    else:
        sql = f"""SELECT s.street, s.district, s.name_zh, coalesce(t.trees, 0) AS trees,
  s.population, round(1000.0 * coalesce(t.trees, 0) / s.population, 3)
  AS trees_per_1000_residents
FROM civil.streets s LEFT JOIN (SELECT street, count(*) AS trees FROM {_trees(survey)} x
  GROUP BY 1) t ON t.street = s.street ORDER BY 1"""
    rows: list[dict[str, Any]] = hub.query(sql, purpose).to_pylist()
    return rows


def changes(hub: Hub, purpose: str, before: str, after: str) -> list[dict[str, Any]]:
    """Per district, between two surveys (trees matched by ``tree_id``): trees in each,
    planted or newly recorded, gone, and health better or worse."""
    a, b = _trees(before), _trees(after)
    sql = f"""WITH a AS {a}, b AS {b},
rank AS (SELECT * FROM (VALUES ('poor', 0), ('fair', 1), ('good', 2)) v(health, r))
SELECT coalesce(a.district, b.district) AS district,
  count(a.tree_id) AS trees_before, count(b.tree_id) AS trees_after,
  count(*) FILTER (WHERE a.tree_id IS NULL) AS added,
  count(*) FILTER (WHERE b.tree_id IS NULL) AS removed,
  count(*) FILTER (WHERE rb.r > ra.r) AS healthier,
  count(*) FILTER (WHERE rb.r < ra.r) AS sicker
FROM a FULL JOIN b ON a.tree_id = b.tree_id
LEFT JOIN rank ra ON ra.health = a.health LEFT JOIN rank rb ON rb.health = b.health
GROUP BY 1 ORDER BY 1"""
    rows: list[dict[str, Any]] = hub.query(sql, purpose).to_pylist()
    return rows


def router(hub: Hub, purpose: str, home: Path) -> APIRouter:
    """The scenario's API (mounted at /scenarios/trees)."""
    api = APIRouter()

    def answer(make: Any) -> Any:
        try:
            return make()
        except ValueError as e:
            return JSONResponse({"error": {"code": "bad_request", "message": str(e)}},
                                status_code=400)
        except ZhongshuError as e:  # the hub's own refusal, as it is
            return JSONResponse({"error": e.to_dict()}, status_code=e.status)

    @api.get("/surveys")
    def surveys() -> Any:
        """The surveys imported, with their tree counts."""
        return answer(lambda: hub.query("SELECT survey, count(*) AS trees FROM "
                                        "parks.tree_surveys GROUP BY 1 ORDER BY 1",
                                        purpose).to_pylist())

    @api.get("/counts")
    def tree_counts(by: Annotated[Literal["district", "street", "species", "age_class",
                                          "health"], Query()] = "district",
                    survey: SurveyQ = None) -> Any:
        """Trees by district, street, species, age class or health."""
        return answer(lambda: counts(hub, purpose, by, survey))

    @api.get("/density")
    def tree_density(level: Annotated[Literal["district", "street"], Query()] = "district",
                     survey: SurveyQ = None) -> Any:
        """Trees per km² and per 1,000 residents."""
        return answer(lambda: density(hub, purpose, level, survey))

    @api.get("/changes")
    def tree_changes(before: Annotated[str, Query(alias="from", max_length=41)],
                     after: Annotated[str, Query(alias="to", max_length=41)]) -> Any:
        """What changed between two surveys, per district."""
        return answer(lambda: changes(hub, purpose, before, after))

    @api.post("/publish")
    def publish(survey: Annotated[str, Query(max_length=41)]) -> Any:
        """Publish the survey's trees per district (and per km², per 1,000 residents) as the
        derived dataset ``trees.density`` of this scenario's member."""
        def run() -> dict[str, Any]:
            rows = density(hub, purpose, "district", survey)
            if not any(r["trees"] for r in rows):
                raise ValueError(f"no trees in survey {survey!r}")
            n = store.publish(home, survey, rows)
            return {"survey": survey, "dataset": DERIVED, "districts": n}
        return answer(run)

    return api


scenario = Scenario(name="trees", member="app-trees", purpose="count-trees", router=router,
                    store=store.create)
