"""What a single value looks like: a Chinese licence plate, a resident id number, a mainland
mobile number, a person's name in Chinese, an address, a coordinate.

Pure functions of one value, each the evidence :mod:`zhongshu.catalog.propose` counts over a
column's sampled values. They err on the side of the value's owner only where a rule says so
(a resident id number is one only with a valid check character; anything else is not one).
"""

from __future__ import annotations

import re
from datetime import date

# GB 11643-1999: weights of the 17 body digits, and the check character of sum mod 11
# (ISO 7064 MOD 11-2)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID = re.compile(r"[1-9]\d{16}[0-9Xx]")


def id_check_char(body: str) -> str:
    """The GB 11643-1999 check character of a 17-digit body.

    >>> id_check_char("11010519491231002")
    'X'
    """
    return _ID_CHECK[sum(int(c) * w for c, w in zip(body, _ID_WEIGHTS, strict=True)) % 11]


def is_id_number(value: str) -> bool:
    """Whether ``value`` is an 18-character resident id number: 17 digits whose 7th to 14th
    are a real birth date, and the check character they give (a wrong one: not an id).

    >>> is_id_number("11010519491231002X"), is_id_number("110105194912310021")
    (True, False)
    >>> is_id_number("11010519491331002X")  # month 13
    False
    """
    v = value.strip()
    if not _ID.fullmatch(v):
        return False
    try:
        born = date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        return False
    if not date(1880, 1, 1) <= born <= date.today():
        return False
    return id_check_char(v[:17]) == v[17].upper()


_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_LETTER = "A-HJ-NP-Z"  # plates use no I and no O
_PLATE = re.compile(
    rf"[{_PROVINCES}][{_LETTER}][·.\- ]?"
    rf"(?:[{_LETTER}0-9]{{4}}[{_LETTER}0-9挂学警港澳领]"  # ordinary: 7 characters
    rf"|[DF][{_LETTER}0-9]\d{{4}}|\d{{5}}[DF])")  # new energy: 8 characters


def is_plate(value: str) -> bool:
    """Whether ``value`` is a Chinese licence plate: a province, a letter, then five
    characters (ordinary) or six (new energy, D or F first or last), written with or
    without a separator.

    >>> [is_plate(v) for v in ("浙A12345", "浙A·D12345", "浙A-3K8Z1", "沪A 12345F")]
    [True, True, True, True]
    >>> [is_plate(v) for v in ("浙AI2345", "AB12345", "浙A1234")]
    [False, False, False]
    """
    return bool(_PLATE.fullmatch(value.strip().upper()))


_MOBILE = re.compile(r"(?:\+?86)?1[3-9]\d{9}")


def is_mobile(value: str) -> bool:
    """Whether ``value`` is a mainland mobile number (``1[3-9]`` and nine digits), with or
    without ``+86`` and separators.

    >>> is_mobile("13812345678"), is_mobile("+86 138-1234-5678"), is_mobile("12812345678")
    (True, True, False)
    """
    return bool(_MOBILE.fullmatch(re.sub(r"[\s\-()]", "", value.strip())))


# the most common surnames (about nine in ten people carry one of them), and compound ones
_SURNAMES = set(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛"
    "郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰"
    "焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁"
    "蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂"
    "全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝")
_COMPOUND = {"欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙",
             "宇文", "司徒", "令狐", "夏侯", "端木", "西门", "南宫", "独孤", "轩辕", "万俟"}
# what ends the name of a place or an organisation, not a person's
_NOT_PERSON = ("区", "县", "市", "省", "镇", "乡", "村", "街", "路", "道", "巷", "弄", "号", "桥",
               "园", "湖", "山", "江", "河", "站", "场", "库", "馆", "院", "局", "委", "办", "厅",
               "司", "所", "中心", "公司", "集团", "银行", "学校", "医院", "小区", "大厦", "广场",
               "公园", "社区", "街道", "部", "处", "科", "队", "厂", "店", "楼", "井", "门")
_CJK = re.compile(r"[\u4e00-\u9fff]{2,4}")


def is_person_name(value: str) -> bool:
    """Whether ``value`` looks like a person's name in Chinese: two to four Chinese
    characters beginning with a common (or compound) surname, not ending as the name of a
    place or an organisation does.

    >>> [is_person_name(v) for v in ("王小明", "欧阳娜娜", "李娜")]
    [True, True, True]
    >>> [is_person_name(v) for v in ("西湖区", "灵隐街道", "王府井", "中医院", "Li Na")]
    [False, False, False, False, False]
    """
    v = value.strip()
    if not _CJK.fullmatch(v) or v.endswith(_NOT_PERSON):
        return False
    return v[:2] in _COMPOUND or v[0] in _SURNAMES


_ADDRESS = re.compile(r"[\u4e00-\u9fff].*(?:\d|[一二三四五六七八九十])\s*(?:号|栋|幢|单元|室|弄)")
_ROAD_EN = re.compile(r"\d+\s*\w+.*\b(?:road|rd|street|st|avenue|ave|lane|ln)\b", re.I)


def is_address(value: str) -> bool:
    """Whether ``value`` reads like a street address: Chinese with a house, building, unit
    or room number, or a number then a road in English.

    >>> is_address("西湖区灵隐路18号3单元201室"), is_address("88 Nanshan Road")
    (True, True)
    >>> is_address("西湖区"), is_address("灵隐街道"), is_address("Xihu")
    (False, False, False)
    """
    v = value.strip()
    return bool(_ADDRESS.search(v)) or bool(_ROAD_EN.search(v))


def decimals(value: float) -> int:
    """How many decimals ``value`` is written with (as Python prints it).

    >>> decimals(120.153421), decimals(30.0), decimals(3)
    (6, 0, 0)
    """
    text = repr(float(value))
    if "e" in text or "." not in text:
        return 0
    frac = text.split(".", 1)[1].rstrip("0")
    return len(frac)
