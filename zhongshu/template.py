"""The city template: ``zhongshu init NAME`` scaffolds a new city's configuration."""

from __future__ import annotations

import re
from pathlib import Path

from zhongshu.errors import ConfigError

_CITY = '''# {name}: the city hub's configuration. Reference: docs/configuration.md
[city]
name = "{name}"
title = "{title}"
name_zh = ""          # 城市中文名
code = ""             # administrative code of the city

[hub]
origin = "hub.{name}" # ledger origin: this hub's name
row_cap = 10000       # rows returned at most per query
query_timeout_s = 30  # per-query time limit
# every setting can be overridden by ZHONGSHU_<SETTING> in the environment

# One table per district: short name, 6-digit administrative code, names. The cockpit has a
# page per district and per street; a viewer opens those its grants' row scopes allow.
# [[districts]]
# name = "xihu"
# code = "330106"
# name_zh = "西湖区"
# title = "Xihu"

# One table per street (街道): a short name unique in the city, its district, its 9-digit code
# [[streets]]
# name = "xihu-lingyin"
# district = "xihu"
# code = "330106001"
# name_zh = "灵隐街道"
# title = "Lingyin"
'''

_COCKPIT = '''# The cockpit of {name} (/cockpit/ on the hub). Reference: docs/cockpit.md
# The default panels whose datasets this city has are shown to viewers who may read them.

# a panel for each dataset no other panel reads: its rows by district, and counted
dataset_panels = true

# hide = ["hub"]              # default panels not to show, by id
# order = ["trees-species"]   # the first panels, by id

# Residents and area per district from a dataset with one row per district (none without):
# [population.districts]
# dataset = "civil.districts"
# area = "district"           # its column naming the district
# residents = "population"
# area_km2 = "area_km2"

# A panel of your own: SQL run as the viewer; {{where}} becomes the page's area predicate
# [[panels]]
# id = "trees-species"
# title = "Trees by species"
# title_zh = "树木（按树种）"
# kind = "bar"                # number | bar | line | table | map | segments
# datasets = ["parks.trees"]
# area = {{ district = "district" }}
# sql = "SELECT species, count(*) AS trees FROM parks.trees WHERE {{where}} GROUP BY 1"
'''

_GEO = '''# geo/: the city's polygons, for the cockpit's maps

Two GeoJSON files (WGS 84 longitude/latitude), each a `FeatureCollection` of `Polygon` or
`MultiPolygon` features:

* `districts.geojson` — one feature per district of `city.toml`, with the properties
  `district` (its `name` in `city.toml`), and optionally `name` and `name_zh`;
* `streets.geojson` — one feature per street, with `street` (its `name` in `city.toml`) and
  `district`.

Without them the cockpit works, with no maps. A district's boundary can be exported from the
city's GIS or from the national administrative boundaries as GeoJSON (e.g. with `ogr2ogr -f
GeoJSON districts.geojson boundaries.shp`); keep the `district` property equal to the names
in `city.toml`. See docs/cockpit.md.
'''

_MEMBER = '''# One file per member. This example is a department with a PostgreSQL system.
# Rename the file, fill it in, and run `zhongshu catalog check`.
[member]
name = "example-department"
# kind: department | enterprise | district | scenario | hub | cockpit | auditor
kind = "department"
title = "Example Department"
title_zh = "示例部门"

[[sources]]
name = "example-db"
kind = "postgres"            # sqlite | postgres | mysql | parquet | csv
host = "10.0.0.5"
port = 5432
database = "example"
user = "zhongshu_readonly"   # a read-only account made by the department
# the password's value goes in secrets.toml or ZHONGSHU_SECRET_EXAMPLE_DB_PASSWORD
password_secret = "example-db-password"
max_concurrency = 4          # queries at once on this system
statement_timeout_s = 30     # enforced by the source itself

[[datasets]]
name = "example.things"      # namespace.name, used in SQL
title = "Things"
description = "What one row is, how often it changes."
source = "example-db"
table = "things"             # or: query = "SELECT … FROM things WHERE …"
area_column = "district"     # optional: the column naming the district of a row
listed = true                # false: invisible to members without a grant

[[datasets.columns]]
name = "thing_id"
type = "BIGINT"
classification = "public"    # public | internal | personal | sensitive
description = "identifier"

[[datasets.columns]]
name = "district"
type = "VARCHAR"
classification = "public"
description = "district short name"
# expr = "lower(area)"       # a column may be an expression over the source table
'''


def scaffold(target: Path, name: str) -> None:
    """Create ``target`` with a city.toml, a starter cockpit.toml, an example member, secrets,
    a data folder and an empty geo folder (its README says how to fill it).

    Raises:
        ConfigError: the name is not a valid city name, or the folder already holds a city.
    """
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
        raise ConfigError(f"city name `{name}` must be lower-case letters, digits, - or _ "
                          "(e.g. hangzhou)")
    if (target / "city.toml").exists():
        raise ConfigError("a city already exists here; edit it instead", path=str(target))
    (target / "members").mkdir(parents=True, exist_ok=True)
    (target / "data").mkdir(exist_ok=True)
    (target / "city.toml").write_text(_CITY.format(name=name, title=name.capitalize()),
                                      encoding="utf-8")
    (target / "members" / "example-department.toml.example").write_text(_MEMBER,
                                                                          encoding="utf-8")
    secrets = target / "secrets.toml"
    secrets.write_text("# Secret values by name; keep this file out of version control.\n"
                       "[secrets]\n# example-db-password = \"...\"\n", encoding="utf-8")
    secrets.chmod(0o600)
    (target / ".gitignore").write_text("secrets.toml\nstate/\n", encoding="utf-8")
    (target / "cockpit.toml").write_text(_COCKPIT.format(name=name), encoding="utf-8")
    (target / "geo").mkdir(exist_ok=True)
    (target / "geo" / "README.md").write_text(_GEO, encoding="utf-8")
