"""Regenerate docs/configuration.md and the function list of docs/query.md from the code.

    .venv/bin/python docs/_generate.py
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from zhongshu.config import (
    AggregateConfig,
    CallerRule,
    Column,
    DatasetConfig,
    District,
    Exclusion,
    GrantConfig,
    HubSettings,
    LedgerSettings,
    Lookup,
    Mask,
    MemberInfo,
    PeopleSettings,
    SourceConfig,
    StreamConfig,
    Street,
    WitnessedLog,
    WitnessPeer,
)
from zhongshu.policy.firewall import ALLOWED_FUNCTIONS

DOCS = Path(__file__).resolve().parent


def table(model: type[BaseModel]) -> str:
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    for name, f in model.model_fields.items():
        key = f.alias or name
        default = "required" if f.is_required() else repr(f.default)
        if default == "PydanticUndefined":
            default = "{}"
        rows.append(f"| `{key}` | {default} | {f.description or ''} |")
    return "\n".join(rows)


def configuration() -> str:
    return f"""# Configuration reference

A city is a folder with `city.toml`, `members/*.toml` (one member each), `secrets.toml`,
`data/` and `state/`. `zhongshu init NAME` writes a commented template;
`zhongshu catalog check --dir CITY` validates everything and compares each dataset with its
source. Every error names the file, the line where it can be found, and what to change.

This page is generated from the code's own models (`zhongshu/config.py`) by
`docs/_generate.py`.

## `city.toml`

```toml
[city]
name = "hangzhou"      # lower-case short name
title = "Hangzhou"
name_zh = "杭州市"
code = "330100"

[hub]                  # every key below; ZHONGSHU_<KEY> in the environment overrides it
row_cap = 10000

[[districts]]
name = "xihu"
code = "330106"        # 6-digit administrative code
name_zh = "西湖区"
title = "Xihu"

[[streets]]
name = "xihu-lingyin"  # unique in the city
district = "xihu"
code = "330106001"     # 9-digit administrative code (optional)
name_zh = "灵隐街道"
title = "Lingyin"
```

### `[[districts]]` and `[[streets]]`

The city's areas: the cockpit has a page per district and per street, with these names and
labels; a grant's row scope that compares a column with an area's name or code
(`district = 'xihu'`, `area_code = '330106'`) limits its consumer's cockpit to that area's
pages (docs/cockpit.md). Each name and code is used once; each street's `district` is a
declared district. Their polygons are in `geo/districts.geojson` and `geo/streets.geojson`
(`geo/README.md`, written by `zhongshu init`, says how to make them); the cockpit works
without them, with no maps.

{table(District)}

{table(Street)}

### `[hub]`

{table(HubSettings)}

### `[ledger]`

Every exchange, refusal and governance change is an entry of the hub's ledger (see
[ledger.md](ledger.md)). Scalar keys may be overridden by `ZHONGSHU_LEDGER_<KEY>`.

{table(LedgerSettings)}

#### `[[ledger.witnesses]]`: hubs asked to cosign this hub's checkpoints

{table(WitnessPeer)}

#### `[[ledger.witnessing]]`: logs this hub witnesses

{table(WitnessedLog)}

```toml
[ledger]
quorum = 1                      # cosignatures that make a checkpoint final
[[ledger.witnesses]]
name = "hub.xihu.hangzhou/witness"
url = "http://10.0.3.7:8400/v1/ledger/witness"
key = "hub.xihu.hangzhou/witness+1a2b3c4d+BA…"   # `zhongshu ledger key` on that hub
[[ledger.witnessing]]
origin = "hub.xihu.hangzhou"
key = "hub.xihu.hangzhou+5e6f7a8b+AQ…"
```

### `[people]`: people sign in with the city's identity provider

A person (a driver, a patient) is not a member: they sign in with the city's OpenID Connect
identity provider, and the hub checks their ID token (a JWT, `Authorization: Bearer`)
against the provider's published keys — signature, algorithm, issuer, audience, times and the
claim carrying the resident id number are all set here; the hub keeps no password of anyone.
Without this section nobody but members may call. See
[security.md](security.md#people-as-callers).

{{table(PeopleSettings)}}

#### `[[people.exclusions]]`: uses not shown entry by entry

Kept by the data bureau: a member's exchanges for a purpose (e.g. investigations) that a
person's `GET /v1/me/usage` does not list one by one. They are listed to every person as
such, and their declaration is itself recorded on the ledger (`people.exclusions`) whenever
it changes.

{{table(Exclusion)}}

```toml
[people]
issuer = "https://id.hangzhou.gov.cn"
audience = "zhongshu-hangzhou"
jwks_url = "https://id.hangzhou.gov.cn/.well-known/jwks.json"
id_claim = "resident_id"
algorithms = ["ES256", "RS256"]
registry = "traffic.vehicles"          # which plates a person owns
[[people.exclusions]]
member = "traffic-police"
purpose = "investigation"
reason = "criminal investigations (Criminal Procedure Law, art. 152)"
```

## `members/NAME.toml`

### `[member]`

{table(MemberInfo)}

### `[[sources]]`

{table(SourceConfig)}

Passwords are never written here: a key named `password`, `secret`, `token`, `dsn`, `uri` or
`url` is refused. Name a secret with `password_secret = "NAME"` and set it in `secrets.toml`
(`[secrets]` table, mode 0600, kept out of version control) or in the environment variable
`ZHONGSHU_SECRET_NAME` (upper case, `-` and `.` as `_`), which wins.

Ask the department for a **read-only account**. The hub adds its own guards on top: DuckDB
attaches every source `READ_ONLY`; native connections are read-only sessions with the
source's statement timeout (`statement_timeout` on PostgreSQL, `max_statement_time` on
MariaDB / `max_execution_time` on MySQL, a progress handler on SQLite). File sources (SQLite,
Parquet, CSV) must be readable by the DuckDB workers' user (`worker_user`, `nobody` by
default): keep the city folder traversable (mode 755) and the files readable (644).

### Connecting a system: `zhongshu connect`

Rather than typing every dataset by hand, let the hub look at the system first:

```sh
zhongshu connect --dir puer --member parks --url 'postgresql://zhongshu_ro:PASSWORD@10.0.0.5:5432/parks'
zhongshu connect --dir puer --member parks --url mysql://zhongshu_ro@10.0.0.6:3306/greening
zhongshu connect --dir puer --member parks --url sqlite:///srv/parks/inventory.db   # or sqlite:data/x.db
zhongshu connect --dir puer --member civil --url file:///srv/civil/exports          # .parquet and .csv files
zhongshu sources list --dir puer     # each member's sources, kind, where, and health
```

`connect` reads the system's tables (`?schema=NAME` for a PostgreSQL schema other than
`public`): their columns and types as the hub will read them, and at most 200 rows of each,
through the same read-only connections the hub uses — it never writes to the source. It then
appends to `members/MEMBER.toml` (created if the member has none; `--kind`, `--title` for a
new one) a `[[sources]]` entry and one `[[datasets]]` per table, named `NAMESPACE.TABLE`
(`--namespace`, default the member's name with `-` as `_`). What the owner wrote stays byte
for byte; a table already declared over that source is left alone, so running it again
proposes only new tables.

Each proposed dataset is `listed = false`, has no grant and a description to write; nothing
is offered until the owner confirms. Each column has a type, a **classification proposal**
and, as a comment beside it, the evidence — counts, never a sampled value (the file may go
into version control):

| proposed | when |
| --- | --- |
| `sensitive`, `identifies = "id_number"` | at least 80 % of the sampled values are 18-character resident id numbers with a valid GB 11643-1999 check character (ISO 7064 MOD 11-2) and birth date; a wrong check character is not an id |
| `personal`, `identifies = "plate"` | … are Chinese licence plates (`浙A12345`, `浙A·D12345` new energy, with or without a separator) |
| `personal` | … are mainland mobile numbers (`1[3-9]` and nine digits), or people's names (two to four Chinese characters, a common surname first, not a place's ending such as 区 or 街道) |
| `sensitive` / `personal` | the column's name says so when its values cannot: an id number (`id_number`, `身份证号`), diagnosis, religion, bank card; a plate, phone, name (`姓名`), or a person's number (`patient_id`, `owner_name`) |
| `personal` | an address (by name or value), or a coordinate with three decimals or more (~100 m), in a table that is about people — or an address named as a home (`住址`, `home_address`) |
| `internal` | everything else: whether a column is `public` is a choice to publish that no sample can tell (grants read both alike) |

The comment also says how a grant could mask the column (`pseudonym` with `normalise =
"plate"`, `partial`, `generalize`…). A column whose name is not a dataset column name is
renamed (`姓名` → `name`, `车牌号` → `plate`, otherwise `column_N`) with `expr` reading the
source column. `area_column` is proposed for a column whose values are the districts of
`city.toml` (short names first, then Chinese or English names), else for one named
`district`, `area`, `region`, `区县`…

A password in the URL is written to `secrets.toml` (mode 0600) under a new name that the
source's `password_secret` refers to; it is never written to the member file, printed or
logged. If the system cannot be reached (wrong host, port, database, user or password), the
command says why in one line and writes nothing. After it: review the proposals, set `listed
= true`, add `[[grants]]`, and run `zhongshu catalog check`.

### `[[datasets]]`

{table(DatasetConfig)}

### `[[datasets.columns]]`

{table(Column)}

`type` is a DuckDB type name. At start and on `catalog check` the hub reads each column from the
source; if a column is gone, or its type left its family (integers may serve a DOUBLE or
DECIMAL column), the dataset is marked unavailable with the reason until the member file or
the source is fixed.

### `[[streams]]`

A department's event stream (MQTT topic or NATS subject) the hub subscribes to. Subscribing
is reading: the hub never publishes on, creates or alters a department's streams. Messages
are acknowledged only once their effect on the windows is committed; malformed ones are
counted and sampled (at most 100 a minute) into the unlisted dataset
`streams.<member>__<stream>__rejected` with the reason.

{table(StreamConfig)}

#### `[[streams.lookups]]`

{table(Lookup)}

### `[[aggregates]]`

A tumbling window over a stream, on event time, served as a dataset of the stream's owner
(`window_start`, `window_end`, the `group_by` columns, then the measures). Late events update
their window until `lateness_s` after its end (measured on the largest event time seen);
later ones are dropped and counted.

{table(AggregateConfig)}

```toml
[[streams]]
name = "passages-live"
kind = "mqtt"
topic = "city/traffic/passages"
time_column = "passed_at"
columns = [{{ name = "camera_id", type = "VARCHAR" }}, {{ name = "passed_at", type = "TIMESTAMP" }},
           {{ name = "speed_kmh", type = "DOUBLE" }}]
[[streams.lookups]]    # each camera's segment and direction, from the owner's own dataset
dataset = "traffic.checkpoints"
key = "camera_id"
columns = [{{ name = "segment_id", type = "VARCHAR" }}, {{ name = "direction", type = "VARCHAR" }}]

[[aggregates]]
dataset = "traffic.live_flow"
stream = "passages-live"
window_s = 60
lateness_s = 120
group_by = ["segment_id", "direction"]
measures = {{ vehicles = "count(*)", avg_speed = "avg(speed_kmh)" }}
```

### `[[grants]]`

A member grants only its own datasets. One grant per consumer, dataset and purpose.

{table(GrantConfig)}

```toml
[[grants]]
consumer = "cockpit-xihu"
purposes = ["district-operations"]
datasets = ["traffic.checkpoints", "traffic.passages"]
[grants.row_scope]  # dataset → predicate (a string applies to every dataset)
"traffic.checkpoints" = "district = 'xihu'"
"traffic.passages" = '''camera_id IN (
    SELECT camera_id FROM traffic.checkpoints WHERE district = 'xihu')'''

[[grants]]
consumer = "app-parking"
purposes = ["convenient-parking"]
datasets = ["parking_westlake.sessions"]
columns = ["session_id", "garage_no", "plate", "entered", "left", "fee_cents"]
masking = {{ plate = "pseudonym" }}
rate_limit = 600
```

### `[[callers]]`: who may call a scenario's services

Only members of kind `scenario`. A scenario's **service** is the first path segment of its
routes under `/scenarios/NAME/` (`eligibility`, `sessions`, `ngsi-ld`…). Every scenario route
authenticates its caller as the protocol does (401 without credentials) and admits only a
member that a table names for the service — by name, kind or role; anyone else gets `403
caller_not_declared`, recorded on the ledger with the caller and the scenario member. A
service no table names is closed to everyone; a table naming a service the scenario does not
offer stops the hub when the scenario is mounted. The scenario then acts on behalf of the
caller (see [security.md](security.md#scenario-callers-and-on-behalf-of)). People (signed in
with the city's identity provider, `[people]`) are admitted only by `people = true` — never by
`members`, `kinds` or `roles` — and read only data about themselves; with `consent = true`,
only while their consent to the service is in force (`POST /v1/me/consents`, else `403
consent_required`).

{table(CallerRule)}

```toml
[[callers]]                          # in members/app-medical.toml
services = ["eligibility"]
roles = ["hospital"]                 # every hospital's system
rate_limit = 60                      # calls per minute, each hospital counted apart

[[callers]]
services = ["report"]
kinds = ["cockpit"]

[[callers]]
services = ["eligibility"]
people = true                        # a patient asking about themselves…
consent = true                       # …once they consented
rate_limit = 30
```

### Masks (`masking = {{ COLUMN = KIND }}` or `{{ COLUMN = {{ kind = …, … }} }}`)

{table(Mask)}
"""


def functions() -> str:
    text = (DOCS / "query.md").read_text()
    head, _, rest = text.partition("## Functions you can use\n\n")
    _, _, tail = rest.partition("\n\nAny other function")
    listing = "\n".join(f"`{f}`" for f in sorted(ALLOWED_FUNCTIONS))
    return f"{head}## Functions you can use\n\n{listing}\n\nAny other function{tail}"


if __name__ == "__main__":
    (DOCS / "configuration.md").write_text(configuration())
    (DOCS / "query.md").write_text(functions())
