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

# One table per district: short name, 6-digit administrative code, names
# [[districts]]
# name = "xihu"
# code = "330106"
# name_zh = "西湖区"
# title = "Xihu"
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
    """Create ``target`` with a city.toml, an example member, secrets and data folders.

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
