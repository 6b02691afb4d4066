"""The city configuration: a folder with ``city.toml`` and one file per member.

::

    my-city/
      city.toml              name, districts and streets, hub settings
      members/*.toml         one member each: its sources and datasets (and, later, grants)
      secrets.toml           passwords, by secret name (or ZHONGSHU_SECRET_<NAME> variables)
      data/                  files of embedded sources (SQLite, Parquet, CSV)
      state/                 the hub's own metadata store (and ledger)

Every file is validated; an error names the file, the line where it can be found, and the fix.

One module per job:

* :mod:`~zhongshu.config.schema` — the models of the files (and the loaded :class:`City`);
  :mod:`~zhongshu.config.settings` the hub's and the ledger's tunables,
  :mod:`~zhongshu.config.grants` what a grant says;
* :mod:`~zhongshu.config.load` — reading TOML, errors mapped to lines (``load_city``);
* :mod:`~zhongshu.config.checks` — what spans files, checked once everything is loaded;
* :mod:`~zhongshu.config.streams` — stream aggregates turned into datasets;
* :mod:`~zhongshu.config.callers` — who may call a scenario's services (``[[callers]]``);
* :mod:`~zhongshu.config.secrets` — passwords from ``secrets.toml`` or the environment.
"""

from zhongshu.config._base import Classification, Column, MemberKind
from zhongshu.config.callers import CallerRule
from zhongshu.config.federation import FederationSettings, PeerConfig
from zhongshu.config.grants import GrantConfig, Mask, MaskKind
from zhongshu.config.load import load_city
from zhongshu.config.people import Exclusion, IdentifierKind, PeopleSettings
from zhongshu.config.schema import (
    AggregateConfig,
    City,
    CityFile,
    CityInfo,
    DatasetConfig,
    District,
    Lookup,
    MemberFile,
    MemberInfo,
    PairsConfig,
    SourceConfig,
    SourceKind,
    StreamConfig,
    Street,
)
from zhongshu.config.secrets import read_secret
from zhongshu.config.settings import (
    HubSettings,
    LedgerSettings,
    StoreSettings,
    WitnessedLog,
    WitnessPeer,
)
from zhongshu.config.streams import (
    is_window_dataset,
    parse_measure,
    stream_columns,
    stream_source,
    stream_store,
    window_schema,
)

__all__ = [
    "AggregateConfig", "CallerRule", "City", "CityFile", "CityInfo", "Classification", "Column",
    "DatasetConfig", "District", "Exclusion", "FederationSettings", "GrantConfig",
    "HubSettings", "IdentifierKind", "LedgerSettings", "Lookup", "Mask", "MaskKind",
    "MemberFile", "MemberInfo", "MemberKind", "PairsConfig", "PeerConfig", "PeopleSettings",
    "SourceConfig", "SourceKind", "StoreSettings", "StreamConfig", "Street",
    "WitnessPeer",
    "WitnessedLog", "is_window_dataset", "load_city", "parse_measure", "read_secret",
    "stream_columns", "stream_source", "stream_store", "window_schema",
]
