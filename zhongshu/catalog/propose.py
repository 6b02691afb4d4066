"""A proposed dataset for one source table: its columns named, typed and classified, and
its area column, each with the evidence for it — for the owner to confirm (``zhongshu
connect`` writes them ``listed = false``, ungranted).

A column is proposed ``personal`` or ``sensitive`` when its sampled values or its name look
like it (:mod:`zhongshu.catalog.recognise`): resident id numbers with a valid check character
(sensitive), licence plates, mobile numbers, people's names, people identified by a number of
theirs (``patient_id``); addresses and precise coordinates in a table about people. Every
other column is proposed ``internal``, the hub's default: whether it is ``public`` is the
owner's choice to publish, which no sample can tell (grants treat the two alike).

Evidence counts values and never quotes one: it is written into the member file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from zhongshu.catalog import recognise
from zhongshu.config import Classification, District
from zhongshu.sources.base import type_family

SHARE = 0.8
"""A column is read as holding a kind of value when at least this share of its sampled,
non-empty values are of that kind."""


@dataclass(frozen=True)
class ColumnProposal:
    """One column: ``name`` in the dataset, ``source_column`` in the table (``expr`` when
    the two differ), its type, the proposed classification and why."""

    name: str
    source_column: str
    type: str
    classification: Classification = "internal"
    identifies: str | None = None
    evidence: str = ""
    mask: str = ""  # how a grant might mask it (advice in the comment)

    @property
    def expr(self) -> str | None:
        """The source column quoted, when the dataset's column is named otherwise."""
        if self.name == self.source_column:
            return None
        return '"' + self.source_column.replace('"', '""') + '"'

    @property
    def flagged(self) -> bool:
        return self.classification in ("personal", "sensitive")


@dataclass(frozen=True)
class TableProposal:
    """One source table proposed as dataset ``dataset``."""

    table: str
    dataset: str
    columns: list[ColumnProposal]
    area_column: str | None
    area_evidence: str
    sampled: int


# --- names ----------------------------------------------------------------------------------

def _tokens(name: str) -> str:
    """``name`` lower-cased, camelCase split, words joined by ``_`` (``carPlate`` →
    ``car_plate``)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return "_".join(t for t in re.split(r"[^a-z0-9\u4e00-\u9fff]+", spaced.lower()) if t)


def _named(name: str, *words: str) -> str | None:
    """The first of ``words`` that ``name`` holds: a Chinese word anywhere, an English one
    as whole words."""
    joined = _tokens(name)
    for w in words:
        if re.search(r"[\u4e00-\u9fff]", w):
            if w in name:
                return w
        elif re.search(rf"(?:^|_){re.escape(w)}(?:_|$)", joined):
            return w
    return None


_PEOPLE = ("patient", "person", "resident", "citizen", "customer", "passenger", "driver",
           "owner", "employee", "staff", "student", "applicant", "contact", "user", "member",
           "client", "buyer", "tenant", "victim", "suspect")
_ID_NAMES = ("id_number", "idnumber", "id_no", "idno", "id_card", "idcard", "id_card_no",
             "sfz", "sfzh", "sfzhm", "identity_number", "身份证", "证件号")
_PLATE_NAMES = ("plate", "plates", "plate_no", "plate_number", "hphm", "车牌", "号牌")
_PHONE_NAMES = ("phone", "mobile", "tel", "telephone", "cellphone", "sjh", "sjhm", "手机",
                "电话", "联系方式")
_PERSON_NAME_NAMES = ("full_name", "fullname", "real_name", "realname", "first_name",
                      "last_name", "surname", "given_name", "姓名", "联系人", "name_of_person")
_ADDRESS_NAMES = ("addr", "address", "地址", "住址", "residence", "domicile", "户籍")
_HOME_NAMES = ("home", "residence", "domicile", "住址", "户籍", "家庭", "居住")
_SENSITIVE_NAMES = ("diagnosis", "disease", "illness", "诊断", "病情", "病历", "religion",
                    "宗教", "ethnicity", "ethnic", "民族", "bank_card", "bankcard", "银行卡",
                    "fingerprint", "biometric", "指纹")
_LON_NAMES = ("lon", "lng", "longitude", "经度")
_LAT_NAMES = ("lat", "latitude", "纬度")
_AREA_NAMES = ("district", "district_name", "area", "area_name", "region", "region_name",
               "区", "区县", "行政区", "所属区县", "所属区")


def _person_word(name: str) -> str | None:
    return _named(name, *_PEOPLE)


# Chinese column names a dataset column may be named after in English
_GLOSSARY = {"姓名": "name", "名称": "name", "车主": "owner", "车主姓名": "owner_name",
             "车牌": "plate", "车牌号": "plate", "车牌号码": "plate", "号牌号码": "plate",
             "身份证": "id_number", "身份证号": "id_number", "身份证号码": "id_number",
             "手机": "phone", "手机号": "phone", "手机号码": "phone", "电话": "phone",
             "联系电话": "phone", "地址": "address", "住址": "address", "区": "district",
             "区县": "district", "行政区": "district", "街道": "street", "经度": "lon",
             "纬度": "lat", "时间": "time", "日期": "date", "编号": "no", "树种": "species",
             "数量": "count", "金额": "amount", "性别": "gender", "年龄": "age"}


def column_name(source_column: str, taken: set[str]) -> str:
    """A dataset column name (``[a-z_][a-z0-9_]*``) for ``source_column``, not in ``taken``.

    >>> column_name("PlateNo", set()), column_name("姓名", set()), column_name("1st", {"c_1st"})
    ('plate_no', 'name', 'c_1st_2')
    >>> column_name("备注", set())
    'column_1'
    """
    base = _GLOSSARY.get(source_column.strip(), "") or _tokens(source_column)
    base = re.sub(r"[^a-z0-9_]", "", base).strip("_")
    if not base:
        base = "column"
        n = 1
        while f"{base}_{n}" in taken:
            n += 1
        return f"{base}_{n}"
    if base[0].isdigit():
        base = "c_" + base
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    return name


def dataset_name(namespace: str, table: str) -> str:
    """``namespace.table`` with the table's name made a dataset name.

    >>> dataset_name("parks", "Tree-Inventory 2024")
    'parks.tree_inventory_2024'
    """
    name = re.sub(r"[^a-z0-9_]", "", _tokens(table)).strip("_") or "table"
    if not name[0].isalpha():
        name = "t_" + name
    return f"{namespace}.{name}"


# --- values ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Values:
    """A column's sampled non-empty values, as text (and as numbers, when they are)."""

    texts: list[str]
    numbers: list[float]

    @classmethod
    def of(cls, raw: Sequence[Any]) -> _Values:
        texts, numbers = [], []
        for v in raw:
            if v is None or isinstance(v, (bytes, bytearray, memoryview)):
                continue
            if isinstance(v, bool):
                continue
            if isinstance(v, (int, float, Decimal)):
                numbers.append(float(v))
            t = str(v).strip()
            if t:
                texts.append(t)
        return cls(texts, numbers)

    def share(self, test: Callable[[str], bool]) -> tuple[int, int]:
        """How many of the values pass ``test``, of how many."""
        return sum(1 for t in self.texts if test(t)), len(self.texts)


def _enough(hit: int, total: int) -> bool:
    return total > 0 and hit >= SHARE * total


def _of(hit: int, total: int, what: str) -> str:
    return f"{hit} of {total} sampled values are {what}"


def _classify(name: str, type_: str, values: _Values) -> ColumnProposal | None:
    """The personal or sensitive proposal for one column on its own (name and values), or
    None when nothing about it alone says so."""
    text = type_family(type_) in ("text", "int")
    ids = values.share(recognise.is_id_number) if text else (0, 0)
    if _enough(*ids):
        return ColumnProposal(name, name, type_, "sensitive", "id_number",
                              _of(*ids, "resident id numbers with a valid GB 11643 check "
                                  "character"), 'pseudonym (normalise = "id_number")')
    plates = values.share(recognise.is_plate) if text else (0, 0)
    if _enough(*plates):
        return ColumnProposal(name, name, type_, "personal", "plate",
                              _of(*plates, "Chinese licence plates"),
                              'pseudonym (normalise = "plate") or partial')
    phones = values.share(recognise.is_mobile) if text else (0, 0)
    if _enough(*phones):
        return ColumnProposal(name, name, type_, "personal", None,
                              _of(*phones, "mainland mobile numbers"), "partial")
    names = values.share(recognise.is_person_name) if text else (0, 0)
    if _enough(*names):
        return ColumnProposal(name, name, type_, "personal", None,
                              _of(*names, "people's names (2-4 Chinese characters, a surname "
                                  "first)"), "redact or pseudonym")
    checked = f"; {_sampled_ids(values)}" if text and _sampled_ids(values) else ""
    if w := _named(name, *_ID_NAMES):
        return ColumnProposal(name, name, type_, "sensitive", None,
                              f"named like a resident id number (`{w}`){checked}",
                              'pseudonym (normalise = "id_number")')
    if w := _named(name, *_SENSITIVE_NAMES):
        return ColumnProposal(name, name, type_, "sensitive", None,
                              f"named like sensitive personal information (`{w}`)", "redact")
    if w := _named(name, *_PLATE_NAMES):
        return ColumnProposal(name, name, type_, "personal", None,
                              f"named like a licence plate (`{w}`)", "pseudonym or partial")
    if w := _named(name, *_PHONE_NAMES):
        return ColumnProposal(name, name, type_, "personal", None,
                              f"named like a phone number (`{w}`)", "partial")
    if w := _named(name, *_PERSON_NAME_NAMES):
        return ColumnProposal(name, name, type_, "personal", None,
                              f"named like a person's name (`{w}`)", "redact or pseudonym")
    person = _person_word(name)
    if person and _named(name, "name", "id", "no", "number", "code", "num", "key"):
        return ColumnProposal(name, name, type_, "personal", None,
                              f"names or numbers a person (`{person}`)", "pseudonym")
    return None


def _sampled_ids(values: _Values) -> str:
    """Evidence that 18-digit values are *not* id numbers (their check characters fail)."""
    shaped = [t for t in values.texts if re.fullmatch(r"\d{17}[0-9Xx]", t)]
    if not shaped:
        return ""
    valid = sum(1 for t in shaped if recognise.is_id_number(t))
    if valid >= SHARE * len(shaped):
        return ""
    return (f"{len(shaped) - valid} of {len(shaped)} sampled 18-digit values have no valid "
            "GB 11643 check character: not read as id numbers")


def _place(name: str, type_: str, values: _Values, about_people: bool
           ) -> ColumnProposal | None:
    """Addresses and coordinates: personal only in a table about people."""
    fam = type_family(type_)
    address = _named(name, *_ADDRESS_NAMES)
    by_values = values.share(recognise.is_address) if fam == "text" else (0, 0)
    if address or (fam == "text" and _enough(*by_values)):
        why = f"named like an address (`{address}`)" if address else _of(*by_values,
                                                                           "addresses")
        home = _named(name, *_HOME_NAMES)
        if about_people or home:
            whose = "a home" if home else "the table is about people"
            return ColumnProposal(name, name, type_, "personal", None,
                                  f"{why}, of a person ({whose})", "redact")
        return ColumnProposal(name, name, type_, "internal", None,
                              f"{why}; no person in this table, so a place's")
    if fam != "float" or not values.numbers:
        return None
    lon = _named(name, *_LON_NAMES) or (name.lower() == "x" and "x")
    lat = _named(name, *_LAT_NAMES) or (name.lower() == "y" and "y")
    lo, hi = (-180.0, 180.0) if lon else (-90.0, 90.0)
    if not (lon or lat) or not all(lo <= v <= hi for v in values.numbers):
        return None
    precise = max(recognise.decimals(v) for v in values.numbers)
    if about_people and precise >= 3:
        return ColumnProposal(name, name, type_, "personal", None,
                              f"a coordinate with {precise} decimals (~100 m or finer) in a "
                              "table about people", "generalize (digits = 2)")
    return ColumnProposal(name, name, type_, "internal", None,
                          "a coordinate; no person in this table, so a place's"
                          if not about_people else f"a coordinate, coarse ({precise} decimals)")


def _area(columns: list[ColumnProposal], samples: dict[str, _Values],
          districts: Sequence[District]) -> tuple[str | None, str]:
    """The column naming a row's district, and why: one whose values are the city's
    district short names first, then their Chinese or English names, then one named
    ``district`` (or area, region, 区…)."""
    short = {d.name for d in districts}
    other = {d.name_zh for d in districts if d.name_zh} | {
        d.title.lower() for d in districts if d.title}
    text = [c for c in columns if type_family(c.type) == "text" and not c.flagged]
    for names, what in ((short, "short names"), (other, "names")):
        if not names:
            continue
        def known(t: str, names: set[str] = names) -> bool:
            return t.lower() in names or t in names

        for c in text:
            hit, total = samples[c.name].share(known)
            if _enough(hit, total):
                return c.name, _of(hit, total, f"the city's district {what} (city.toml)")
    for c in text:
        if c.source_column.lower() in _AREA_NAMES:
            note = "; its values are not the districts of city.toml: check them" \
                if districts and samples[c.name].texts else ""
            return c.name, f"named like an area (`{c.source_column}`){note}"
    return None, ""


def propose_table(table: str, columns: dict[str, str], rows: Sequence[Sequence[Any]],
                  namespace: str, districts: Sequence[District] = ()) -> TableProposal:
    """The dataset proposed for ``table`` of a source.

    Args:
        columns: source column → DuckDB type, in the table's order.
        rows: sampled rows, values in the order of ``columns``.
        namespace: the owner's namespace (``parks`` in ``parks.trees``).
        districts: the city's districts (``city.toml``), to recognise an area column.
    """
    names = list(columns)
    taken: set[str] = set()
    proposals: list[ColumnProposal] = []
    samples: dict[str, _Values] = {}
    alone: dict[str, ColumnProposal | None] = {}
    for i, src in enumerate(names):
        values = _Values.of([r[i] for r in rows if i < len(r)])
        alone[src] = _classify(src, columns[src], values)
        samples[src] = values
    about_people = any(p is not None and p.flagged for p in alone.values())
    for src in names:
        p = alone[src] or _place(src, columns[src], samples[src], about_people) or \
            ColumnProposal(src, src, columns[src], evidence=_sampled_ids(samples[src]))
        name = src if re.fullmatch(r"[a-z_][a-z0-9_]*", src) and src not in taken \
            else column_name(src, taken)
        taken.add(name)
        proposals.append(ColumnProposal(name, src, p.type, p.classification, p.identifies,
                                        p.evidence, p.mask))
    by_name = {p.name: samples[p.source_column] for p in proposals}
    area, why = _area(proposals, by_name, districts)
    return TableProposal(table, dataset_name(namespace, table), proposals, area, why,
                         len(rows))
