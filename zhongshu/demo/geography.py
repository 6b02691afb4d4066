"""The demo city's fixed geography: six districts, their streets, a road grid and polygons.

The grid has 12 × 8 intersections; each district is a 4 × 4 block of them and each street a
2 × 2 quarter of its district. Directed segments join neighbouring intersections and belong to
the district (and street) of the intersection they leave.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from zhongshu.traffic.geo import distance_m

DISTRICTS: tuple[tuple[str, str, str, str], ...] = (
    # name, code, Chinese name, English title
    ("xihu", "330106", "西湖区", "Xihu"),
    ("shangcheng", "330102", "上城区", "Shangcheng"),
    ("gongshu", "330105", "拱墅区", "Gongshu"),
    ("binjiang", "330108", "滨江区", "Binjiang"),
    ("xiaoshan", "330109", "萧山区", "Xiaoshan"),
    ("yuhang", "330110", "余杭区", "Yuhang"),
)

STREETS: dict[str, tuple[tuple[str, str], ...]] = {
    "xihu": (("lingyin", "灵隐街道"), ("beishan", "北山街道"), ("xixi", "西溪街道"),
             ("zhuantang", "转塘街道")),
    "shangcheng": (("hubin", "湖滨街道"), ("qingbo", "清波街道"), ("xiaoying", "小营街道"),
                   ("ziyang", "紫阳街道")),
    "gongshu": (("mishixiang", "米市巷街道"), ("gongchen", "拱宸桥街道"),
                ("hushu", "湖墅街道"), ("kangqiao", "康桥街道")),
    "binjiang": (("xixing", "西兴街道"), ("changhe", "长河街道"), ("puyan", "浦沿街道"),
                 ("baima", "白马湖街道")),
    "xiaoshan": (("chengxiang", "城厢街道"), ("beigan", "北干街道"), ("wenyan", "闻堰街道"),
                 ("xintang", "新塘街道")),
    "yuhang": (("wuchang", "五常街道"), ("cangqian", "仓前街道"), ("liangzhu", "良渚街道"),
               ("xianlin", "闲林街道")),
}

POPULATION = {"xihu": 1_150_000, "shangcheng": 1_320_000, "gongshu": 1_120_000,
              "binjiang": 530_000, "xiaoshan": 2_010_000, "yuhang": 1_450_000}

GRID_W, GRID_H = 12, 8
BLOCK = 4
LON0, LAT0 = 120.05, 30.15
DLON, DLAT = 0.012, 0.010


@dataclass(frozen=True)
class Node:
    node_id: str
    i: int
    j: int
    lon: float
    lat: float
    district: str
    street: str


@dataclass(frozen=True)
class Segment:
    segment_id: str
    from_node: Node
    to_node: Node
    district: str
    street: str
    length_m: float
    free_flow_kmh: float
    lanes: int
    direction: str


def district_at(i: int, j: int) -> str:
    """District of grid intersection (i, j)."""
    return DISTRICTS[(j // BLOCK) * (GRID_W // BLOCK) + i // BLOCK][0]


def street_at(i: int, j: int) -> str:
    """Street (``district-name``) of grid intersection (i, j)."""
    d = district_at(i, j)
    q = ((j % BLOCK) // 2) * 2 + (i % BLOCK) // 2
    return f"{d}-{STREETS[d][q][0]}"


class Grid:
    """The road network: nodes by (i, j) and directed segments by their end nodes."""

    def __init__(self, seed: int) -> None:
        rnd = random.Random(f"{seed}-grid")
        self.nodes: dict[tuple[int, int], Node] = {}
        for j in range(GRID_H):
            for i in range(GRID_W):
                lon = LON0 + i * DLON + rnd.uniform(-0.0015, 0.0015)
                lat = LAT0 + j * DLAT + rnd.uniform(-0.0012, 0.0012)
                self.nodes[(i, j)] = Node(f"n{i:02d}{j:02d}", i, j, round(lon, 6), round(lat, 6),
                                          district_at(i, j), street_at(i, j))
        self.segments: dict[tuple[tuple[int, int], tuple[int, int]], Segment] = {}
        for (i, j), a in self.nodes.items():
            for di, dj, heading in ((1, 0, "E"), (-1, 0, "W"), (0, 1, "N"), (0, -1, "S")):
                b = self.nodes.get((i + di, j + dj))
                if b is None:
                    continue
                arterial = (i % BLOCK == 0) if dj else (j % BLOCK == 0)
                seg = Segment(
                    segment_id=f"seg-{a.node_id[1:]}-{b.node_id[1:]}",
                    from_node=a, to_node=b, district=a.district, street=a.street,
                    length_m=round(distance_m(a.lon, a.lat, b.lon, b.lat), 1),
                    free_flow_kmh=60.0 if arterial else 40.0,
                    lanes=3 if arterial else 2, direction=heading)
                self.segments[((i, j), (b.i, b.j))] = seg

    def route(self, start: tuple[int, int], end: tuple[int, int],
              rnd: random.Random) -> list[Segment]:
        """A shortest grid route from ``start`` to ``end`` (x first or y first, at random)."""
        (i, j), (ti, tj) = start, end
        steps: list[tuple[int, int]] = []
        xs = [(1 if ti > i else -1, 0)] * abs(ti - i)
        ys = [(0, 1 if tj > j else -1)] * abs(tj - j)
        steps = xs + ys if rnd.random() < 0.5 else ys + xs
        out = []
        for di, dj in steps:
            out.append(self.segments[((i, j), (i + di, j + dj))])
            i, j = i + di, j + dj
        return out


def district_polygon(name: str) -> list[list[float]]:
    """Closed ring (lon, lat) of a district's block."""
    k = [d[0] for d in DISTRICTS].index(name)
    bi, bj = k % (GRID_W // BLOCK), k // (GRID_W // BLOCK)
    return _rect(bi * BLOCK - 0.5, bj * BLOCK - 0.5, BLOCK, BLOCK)


def street_polygon(district: str, q: int) -> list[list[float]]:
    """Closed ring (lon, lat) of quarter ``q`` (0..3) of a district."""
    k = [d[0] for d in DISTRICTS].index(district)
    bi, bj = k % (GRID_W // BLOCK), k // (GRID_W // BLOCK)
    return _rect(bi * BLOCK - 0.5 + (q % 2) * 2, bj * BLOCK - 0.5 + (q // 2) * 2, 2, 2)


def _rect(i0: float, j0: float, w: float, h: float) -> list[list[float]]:
    x0, y0 = LON0 + i0 * DLON, LAT0 + j0 * DLAT
    x1, y1 = x0 + w * DLON, y0 + h * DLAT
    return [[round(x, 6), round(y, 6)] for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1),
                                                     (x0, y0))]


def street_code(district_code: str, quarter: int) -> str:
    """The 9-digit administrative code of a district's ``quarter``-th street (its district's
    code and a 3-digit number, as township codes are built).

    >>> street_code("330106", 0)
    '330106001'
    """
    return f"{district_code}{quarter + 1:03d}"


def geojson(level: str) -> dict[str, object]:
    """FeatureCollection of ``district`` or ``street`` polygons with Chinese and English names."""
    feats = []
    for name, code, zh, title in DISTRICTS:
        if level == "district":
            feats.append(_feature(district_polygon(name), {"district": name, "code": code,
                                                           "name": title, "name_zh": zh}))
            continue
        for q, (sname, szh) in enumerate(STREETS[name]):
            feats.append(_feature(street_polygon(name, q),
                                  {"street": f"{name}-{sname}", "district": name,
                                   "code": street_code(code, q), "name": sname.capitalize(),
                                   "name_zh": szh}))
    return {"type": "FeatureCollection", "features": feats}


def _feature(ring: list[list[float]], props: dict[str, str]) -> dict[str, object]:
    return {"type": "Feature", "properties": props,
            "geometry": {"type": "Polygon", "coordinates": [ring]}}
