"""What a caller may read of a dataset.

Until grants land (issue 3) the rule is deliberately simple and conservative:

* the owner reads every column of its own datasets;
* any other member reads the public and internal columns of *listed* datasets;
* personal and sensitive columns are never given to anyone but the owner;
* unlisted datasets do not exist for anyone but their owner (``dataset_not_found``);
* members whose only role is auditing read no data.

Grants will replace :func:`readable_columns` with a per-consumer, per-purpose decision; every
caller of this module already passes the purpose.
"""

from __future__ import annotations

from typing import Literal

from zhongshu.catalog.catalog import Dataset
from zhongshu.errors import ColumnNotGranted, DatasetNotFound, Forbidden
from zhongshu.policy.identity import Caller

Access = Literal["none", "partial", "full"]
_OPEN = ("public", "internal")


def visible(caller: Caller, dataset: Dataset) -> bool:
    """Whether the dataset appears to the caller at all (listed, or its own)."""
    return dataset.listed or dataset.owner == caller.name


def readable_columns(caller: Caller, dataset: Dataset, purpose: str) -> list[str]:
    """Columns of ``dataset`` the caller may read for ``purpose`` (may be empty)."""
    if dataset.owner == caller.name:
        return [c.name for c in dataset.columns]
    if caller.member.kind == "auditor" or not dataset.listed:
        return []
    return [c.name for c in dataset.columns if c.classification in _OPEN]


def access_level(caller: Caller, dataset: Dataset, purpose: str = "") -> Access:
    """``none``, ``partial`` or ``full`` — as the catalog shows it to the caller."""
    cols = readable_columns(caller, dataset, purpose)
    if not cols:
        return "none"
    return "full" if len(cols) == len(dataset.columns) else "partial"


def require_dataset(caller: Caller, dataset: Dataset | None, name: str) -> Dataset:
    """The dataset if the caller may know it exists; otherwise ``dataset_not_found``."""
    if dataset is None or not visible(caller, dataset):
        raise DatasetNotFound(f"no dataset `{name}`; `GET /v1/catalog` lists the datasets you "
                              "can use")
    return dataset


def check_columns(caller: Caller, dataset: Dataset, purpose: str, used: set[str]) -> list[str]:
    """The readable columns, after checking every column in ``used`` is among them.

    Raises:
        Forbidden: the caller may read nothing of this dataset.
        ColumnNotGranted: naming the first column used that is not readable.
    """
    readable = readable_columns(caller, dataset, purpose)
    if not readable:
        raise Forbidden(f"`{caller.name}` holds no grant on `{dataset.name}`; ask its owner "
                        f"`{dataset.owner}` for one, naming the columns and the purpose")
    for col in sorted(used):
        if col not in readable:
            raise ColumnNotGranted(f"column `{col}` of `{dataset.name}` is not granted to "
                                   f"`{caller.name}` for purpose `{purpose or '(none)'}`")
    return readable
