"""What a column looks like (``catalog.recognise``) and what is proposed for it
(``catalog.propose``), against oracles written here from the standards themselves."""

from __future__ import annotations

import random
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from zhongshu.catalog.propose import propose_table
from zhongshu.catalog.recognise import is_id_number, is_mobile, is_person_name, is_plate
from zhongshu.config import District


def mod11_2(body: str) -> str:
    """ISO 7064 MOD 11-2 check character, computed the standard's recursive way (not with
    GB 11643's weight table, as the code under test does)."""
    p = 0
    for ch in body:
        p = ((p + int(ch)) * 2) % 11
    c = (12 - p) % 11
    return "X" if c == 10 else str(c)


def id_body(rnd: random.Random) -> str:
    born = date(1930, 1, 1) + timedelta(days=rnd.randrange(0, 365 * 90))
    return f"{rnd.choice(['330106', '110105', '530802'])}{born:%Y%m%d}{rnd.randrange(1000):03d}"


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32))
def test_an_id_number_is_one_only_with_its_check_character(seed: int) -> None:
    rnd = random.Random(seed)
    body = id_body(rnd)
    right = mod11_2(body)
    assert is_id_number(body + right)
    assert is_id_number(body + right.lower())
    for wrong in "0123456789X":
        if wrong != right:
            assert not is_id_number(body + wrong)


def test_known_id_numbers() -> None:
    # GB 11643-1999's own example, and one with a ten (X) check
    assert is_id_number("11010519491231002X")
    assert not is_id_number("110105194912310020")
    assert not is_id_number("1101051949123100")  # too short
    assert not is_id_number("11010520491231002X".replace("2049", "2999"))  # not yet born


def test_plates_phones_and_names() -> None:
    for plate in ("浙A12345", "浙A3K8Z1", "浙A-3K8Z1", "浙A 3K8Z1", "浙AD12345", "浙A·12345F",
                  "粤B1234学", "京AF12345"):
        assert is_plate(plate), plate
    for not_plate in ("浙A1234", "浙AO1234", "A12345", "浙12345", "西湖停车01", "浙A1234567"):
        assert not is_plate(not_plate), not_plate
    for phone in ("13812345678", "19912345678", "+8613812345678", "138 1234 5678"):
        assert is_mobile(phone), phone
    for not_phone in ("12812345678", "1381234567", "02112345678", "138123456789"):
        assert not is_mobile(not_phone), not_phone
    for name in ("王伟", "张秀英", "司马相如", "欧阳修"):
        assert is_person_name(name), name
    for not_name in ("西湖区", "思茅区", "灵隐街道", "张家港市", "王府井", "中医院", "ginkgo",
                     "王"):
        assert not is_person_name(not_name), not_name


DISTRICTS = [District(name="simao", code="530802", name_zh="思茅区", title="Simao"),
             District(name="ninger", code="530821", name_zh="宁洱县", title="Ninger")]


def _rows(n: int = 50) -> tuple[dict[str, str], list[tuple[object, ...]]]:
    rnd = random.Random(4)
    columns = {"rec_id": "BIGINT", "holder": "VARCHAR", "plate_text": "VARCHAR",
               "idn": "VARCHAR", "serial": "VARCHAR", "contact": "VARCHAR", "qu": "VARCHAR",
               "x": "DOUBLE", "y": "DOUBLE", "note": "VARCHAR"}
    rows = []
    for i in range(n):
        body = id_body(rnd)
        right = mod11_2(body)
        wrong = next(c for c in "0123456789X" if c != right)
        rows.append((i, rnd.choice(["王伟", "李娜", "张敏", "刘洋"]),
                     "浙A" + "".join(rnd.choice("0123456789ABCDEFGHJK") for _ in range(5)),
                     body + right, body + wrong, f"13{rnd.randrange(10**9):09d}",
                     rnd.choice(["simao", "ninger"]), 100.97 + rnd.random() / 100,
                     22.78 + rnd.random() / 100, rnd.choice(["ok", "late", ""])))
    return columns, rows


def test_columns_are_classified_by_their_values() -> None:
    """Neutral column names: only the values can say what each one holds."""
    columns, rows = _rows()
    p = propose_table("records", columns, rows, "dept", DISTRICTS)
    got = {c.name: (c.classification, c.identifies) for c in p.columns}
    assert got == {
        "rec_id": ("internal", None), "holder": ("personal", None),
        "plate_text": ("personal", "plate"), "idn": ("sensitive", "id_number"),
        "serial": ("internal", None),  # 18 digits, wrong check characters: not id numbers
        "contact": ("personal", None), "qu": ("internal", None),
        "x": ("personal", None), "y": ("personal", None),  # precise, in a table about people
        "note": ("internal", None)}
    assert p.area_column == "qu" and "district short names" in p.area_evidence
    assert p.dataset == "dept.records" and p.sampled == 50
    serial = next(c for c in p.columns if c.name == "serial")
    assert "no valid GB 11643 check character" in serial.evidence
    # evidence counts values, and never quotes one
    for c in p.columns:
        for r in rows:
            for v in r:
                if isinstance(v, str) and len(v) > 4:
                    assert v not in c.evidence


def test_coordinates_and_addresses_of_places_are_not_personal() -> None:
    columns = {"site": "VARCHAR", "address": "VARCHAR", "lon": "DOUBLE", "lat": "DOUBLE"}
    rows = [("站点一", "思茅区振兴大道18号", 100.977123, 22.781234),
            ("站点二", "思茅区月光路2号", 100.971, 22.783)]
    p = propose_table("sites", columns, rows, "dept", DISTRICTS)
    assert {c.name: c.classification for c in p.columns} == dict.fromkeys(columns, "internal")
    assert p.area_column is None
    # the same columns beside a person's name are that person's
    rows = [(*r, n) for r, n in zip(rows, ("王伟", "李娜"), strict=True)]
    p = propose_table("homes", {**columns, "resident_name": "VARCHAR"}, rows, "dept")
    assert {c.name: c.classification for c in p.columns} == {
        "site": "internal", "address": "personal", "lon": "personal", "lat": "personal",
        "resident_name": "personal"}


def test_names_say_what_an_empty_table_holds() -> None:
    columns = {"姓名": "VARCHAR", "手机号": "VARCHAR", "身份证号": "VARCHAR", "车牌号": "VARCHAR",
               "patient_id": "VARCHAR", "区县": "VARCHAR", "备注": "VARCHAR"}
    p = propose_table("登记", columns, [], "dept", DISTRICTS)
    got = {c.source_column: (c.name, c.classification) for c in p.columns}
    assert got == {"姓名": ("name", "personal"), "手机号": ("phone", "personal"),
                   "身份证号": ("id_number", "sensitive"), "车牌号": ("plate", "personal"),
                   "patient_id": ("patient_id", "personal"), "区县": ("district", "internal"),
                   "备注": ("column_1", "internal")}
    assert p.area_column == "district"
    assert next(c for c in p.columns if c.source_column == "姓名").expr == '"姓名"'
    assert p.dataset.startswith("dept.")
