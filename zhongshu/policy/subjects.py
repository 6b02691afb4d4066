"""Subjects: the people an exchange is about, as keyed tags that reveal no identifier.

A dataset column may declare that it identifies a person (``identifies = "plate"`` or
``"id_number"``). Any query that reads such a dataset is searched for the identifiers it
names: every string literal (or lifted parameter) of the query that has the shape of an
identifier of a kind the query reads, once normalised (:func:`normalise`), is an identifier
the query touches — compared with the column directly, through a CTE, a renamed column or an
expression alike (over-tagging an unrelated literal of an identifier's shape is harmless: it
names the person whose identifier it is). The ledger entry of the exchange carries each as a
**subject tag**, ``HMAC-SHA256(subject key, kind ":" normal form)`` (:class:`SubjectKey`,
``state/subject.key``, 0600), and is indexed under it, so a person (who knows their own
identifiers) can find every entry about them and nobody learns an identifier from the log.

For a request made *on behalf of a person* (:class:`PersonScope`) the same search is a
wall: every identifier the query names must be one of the person's own, and every dataset
read that holds identifying columns must be narrowed, in its own ``WHERE``, by equality of
such a column with a value (:func:`check_person`) — so what a person sees through a scenario
is about them alone, whatever the scenario's own code does.

Not attributed (documented in docs/security.md): an identifier a caller who holds the column
in clear computes inside the query (``'浙A' || '12345'``); callers who hold it as a pseudonym
cannot look anything up that way.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zhongshu.config.keyfiles import key_bytes
from zhongshu.errors import ConfigError, NotYourData

if TYPE_CHECKING:
    from sqlglot import exp

PERSON = "~person"
"""How ledger entries name a person as caller or on-behalf-of: no member name can take it
(names start with a letter), and it holds no identifier (the entry's subject tags do)."""
INDEX = "subject:"
"""Prefix of a subject tag in the ledger's usage index (dataset names hold no colon)."""

_PLATE = re.compile(r"^[\u4e00-\u9fff][A-Z][A-Z0-9]{5,6}$")
_ID_NUMBER = re.compile(r"^\d{17}[\dX]$")
_SHAPES = {"plate": _PLATE, "id_number": _ID_NUMBER}


def normalise(kind: str, value: Any) -> str | None:
    """The normal form of an identifier of ``kind``, or None when ``value`` has not its shape.

    Plates lose spaces, hyphens, dots, middle dots and underscores and are upper-cased; id
    numbers lose spaces and take an upper-case ``X`` — the text transformation is the one
    lookups are normalised and counted with (``policy.lookups.normalise``), so what a
    lookup matches and whom it is attributed to cannot differ.

    >>> normalise("plate", "浙a-123.45"), normalise("plate", "浙A 12345")
    ('浙A12345', '浙A12345')
    >>> normalise("id_number", "33010619900101123x"), normalise("id_number", "12")
    ('33010619900101123X', None)
    """
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        return None
    from zhongshu.policy.lookups import normalise as as_looked_up  # one transformation

    shape = _SHAPES.get(kind)
    if shape is None:
        return None
    text = as_looked_up(kind, str(value))
    return text if shape.match(text) else None


def literal_identifiers(sql: str) -> set[tuple[str, str]]:
    """Every identifier of any kind that a string or number literal of ``sql`` has the shape
    of — for a refused query, whose plan (and so its datasets) may never have been made: a
    refused attempt at someone's data is shown to them too.

    >>> sorted(literal_identifiers("SELECT 1 FROM t WHERE plate = '浙a-12345' AND n = 7"))
    [('plate', '浙A12345')]
    """
    import sqlglot
    from sqlglot.tokenizer_core import TokenType

    try:
        tokens = sqlglot.Dialect.get_or_raise("duckdb").tokenizer_class().tokenize(sql)
    except Exception:
        return set()  # not SQL: a syntax refusal, about nobody we can tell
    out: set[tuple[str, str]] = set()
    for t in tokens:
        if t.token_type in (TokenType.STRING, TokenType.NUMBER):
            for kind in _SHAPES:
                normal = normalise(kind, t.text)
                if normal is not None:
                    out.add((kind, normal))
    return out


class SubjectKey:
    """The ledger-subject key: a hub secret (``state/subject.key``, 0600, never logged)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def __repr__(self) -> str:
        return "SubjectKey(<secret>)"

    @classmethod
    def load(cls, path: Path) -> SubjectKey:
        """The key in ``path``, created (0600) on first use."""
        secret = key_bytes(path)
        if len(secret) != 32:  # a short or empty key would make its digests guessable
            raise ConfigError(f"{path.name} must hold 32 random bytes (it holds "
                              f"{len(secret)}); restore it from a backup", path=str(path))
        return cls(secret)

    def tag(self, kind: str, normal: str) -> str:
        """The subject tag of an identifier already in normal form (hex, 64 characters)."""
        return hmac.new(self._secret, f"{kind}:{normal}".encode(), hashlib.sha256).hexdigest()

    def tags(self, identifiers: Iterable[tuple[str, str]]) -> list[str]:
        """The sorted, distinct tags of ``(kind, normal form)`` identifiers."""
        return sorted({self.tag(k, v) for k, v in identifiers})


@dataclass(frozen=True)
class PersonScope:
    """A person a scenario member acts for: their subject tag (of the id number) and every
    identifier of theirs (their id number, the plates registered to them)."""

    tag: str
    identifiers: frozenset[tuple[str, str]]

    def __repr__(self) -> str:  # never an identifier in a log line or a traceback
        return f"PersonScope(tag={self.tag[:12]}…, identifiers={len(self.identifiers)})"


@dataclass(frozen=True)
class Slot:
    """A literal (``value``) or lifted parameter (``param``) of a query that may be an
    identifier of one of ``kinds``."""

    kinds: tuple[str, ...]
    value: Any = None
    param: str | None = None


@dataclass(frozen=True)
class Subjects:
    """What a governed query may name of people: its slots, and for each reference to a
    dataset with identifying columns, the values its own WHERE narrows such a column to
    (``col = value`` as a conjunct; none: the reference is not narrowed)."""

    slots: tuple[Slot, ...] = ()
    narrowings: tuple[tuple[str, tuple[Slot, ...]], ...] = ()

    def identifiers(self, params: dict[str, Any]) -> set[tuple[str, str]]:
        """The identifiers the query names, given the values of its parameters."""
        return _values(self.slots, params)

    def unnarrowed(self, mine: frozenset[tuple[str, str]], params: dict[str, Any]
                   ) -> list[str]:
        """The datasets read without narrowing to one of the identifiers ``mine``."""
        return sorted({name for name, cands in self.narrowings
                       if not any(i in mine for i in _values(cands, params))})


def _values(slots: Iterable[Slot], params: dict[str, Any]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for s in slots:
        value = params.get(s.param) if s.param is not None else s.value
        for kind in s.kinds:
            normal = normalise(kind, value)
            if normal is not None:
                out.add((kind, normal))
    return out


def slot_of(node: exp.Expr, kinds: tuple[str, ...]) -> Slot | None:
    """The slot of a literal or placeholder node (None for any other node)."""
    from sqlglot import exp

    if isinstance(node, exp.Placeholder):
        return Slot(kinds, param=node.name)
    if isinstance(node, exp.Literal) and (node.is_string or node.is_int):
        return Slot(kinds, value=node.this)
    return None


def check_person(person: PersonScope, subjects: Subjects, params: dict[str, Any],
                 key: SubjectKey | None = None) -> None:
    """The wall for a request made on behalf of ``person``.

    Raises:
        NotYourData: the query names an identifier not the person's, or reads an
            identifying dataset not narrowed to one identifier (its ``subjects`` carry the
            tags of the others' identifiers, when ``key`` is given).
    """
    others = subjects.identifiers(params) - person.identifiers
    if others:
        err = NotYourData("a request made for a person may read only data about that person "
                          "(their own id number, the plates registered to them)")
        if key is not None:
            err.subjects = tuple(key.tags(others))
        raise err
    loose = subjects.unnarrowed(person.identifiers, params)
    if loose:
        raise NotYourData(f"a request made for a person must narrow "
                          f"{', '.join(f'`{d}`' for d in loose)} to one of their "
                          "identifiers (`column = value` in its own WHERE)")
