"""SMS lookup: "Київ Хрещатик 22", "Бровари ТЕПЛО", "Lviv HEAT" in; the nearest open points with addresses out.

The place is found by asking search's text search (names, addresses and settlements, Cyrillic or Latin, typos
allowed); the open points by its nearest search from there. Each reply SMS is one part (70 UCS-2 or 160 GSM-7
characters), so a basic phone shows it whole; three points take one or two of them.
"""

import logging
import re
import statistics
from dataclasses import dataclass
from typing import Any

import httpx

from poi_notify.settings import NotifySettings
from poi_notify.sms import text as sms_text
from poi_shared.contracts import Service

log = logging.getLogger(__name__)
MAX_POINTS = 3
MAX_MESSAGES = 2
# A text-search score (0..100) below this is not taken as the place the resident meant.
MIN_SCORE = 60.0
TEXT_LIMIT = 50  # search's default cap; ties among them (a settlement's points) are averaged to its middle
MAX_PLACE_WORDS = 6
MIN_LINE = 16  # a point's line cut shorter than this says too little to send
EXAMPLE = {"uk": "Київ Хрещатик 22 ТЕПЛО", "en": "Kyiv Khreshchatyk 22 HEAT"}

# Service words residents text, in Ukrainian, English and Latin-typed Ukrainian, lower-case without apostrophes.
SERVICE_WORDS: dict[str, Service] = {
    **dict.fromkeys(["тепло", "обігрів", "heat", "heating", "warm", "teplo"], Service.heat),
    **dict.fromkeys(["зарядка", "заряд", "зарядити", "charge", "charging", "zariadka"], Service.charging),
    **dict.fromkeys(["вода", "water", "voda"], Service.water),
    **dict.fromkeys(["звязок", "інтернет", "internet", "wifi", "zviazok"], Service.internet),
    **dict.fromkeys(["світло", "електрика", "power", "electricity", "svitlo"], Service.electricity),
    **dict.fromkeys(["їжа", "food", "yizha"], Service.food),
    **dict.fromkeys(["чай", "напої", "tea", "drinks"], Service.hot_drinks),
    **dict.fromkeys(["ночівля", "сон", "sleep", "nochivlia"], Service.sleeping_places),
    **dict.fromkeys(["туалет", "toilet", "toilets", "tualet"], Service.toilets),
    **dict.fromkeys(["аптечка", "медицина", "firstaid", "aid", "aptechka"], Service.first_aid),
    **dict.fromkeys(["starlink", "старлінк"], Service.starlink),
}
# Words that say nothing about the place ("where", "points near").
FILLER = frozenset(["де", "пункт", "пункти", "біля", "поруч", "where", "point", "points", "near", "nearest"])
WORD = re.compile(r"[\w'’ʼ`-]+")
APOSTROPHES = re.compile("['’ʼ`]")
NOISE = re.compile(r"^(?:пункт незламності|invincibility point)\s*[—–-]\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Request:
    """What the resident asked: place words and the services wanted."""

    place: str
    services: tuple[Service, ...]


def parse(body: str) -> Request:
    """Split an inbound text into place words and service words (any case, Cyrillic or Latin)."""
    place, services = [], []
    for word in WORD.findall(body):
        key = APOSTROPHES.sub("", word.lower()).strip("-")
        if key in SERVICE_WORDS:
            if SERVICE_WORDS[key] not in services:
                services.append(SERVICE_WORDS[key])
        elif key and key not in FILLER:
            place.append(word)
    return Request(" ".join(place[:MAX_PLACE_WORDS]), tuple(services))


class SearchUnavailable(Exception):
    """Search did not answer usefully (down, throttling, or a bad answer)."""


async def _get(http: httpx.AsyncClient, settings: NotifySettings, path: str, params: Any) -> dict[str, Any]:
    url = settings.search_url.rstrip("/") + path
    try:
        response = await http.get(url, params=params, timeout=settings.search_timeout_s)
    except httpx.HTTPError as exc:
        raise SearchUnavailable(f"{path}: {exc!r}") from exc
    if response.status_code != 200:
        raise SearchUnavailable(f"{path} answered {response.status_code}")
    try:
        body = response.json()
    except ValueError as exc:
        raise SearchUnavailable(f"{path} answered something not JSON: {exc!r}") from exc
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise SearchUnavailable(f"{path} answered without items")
    return body


@dataclass(frozen=True)
class Place:
    """Where the resident's words point, and the settlement they name (replies leave it out of addresses there)."""

    lat: float
    lon: float
    settlement: str


async def find_place(http: httpx.AsyncClient, settings: NotifySettings, place: str) -> Place | None:
    """Where the words point: the best match, or the middle of equally good ones (a settlement); None if unknown.

    When all the words match nothing well (a street search does not know), the last words are dropped in turn, so
    "Київ Вигадана 22" still finds Київ.
    """
    words = place.split()
    while words:
        answer = await _get(http, settings, "/v1/search/text", {"q": " ".join(words), "limit": TEXT_LIMIT})
        items = answer["items"]
        if items and items[0]["score"] >= MIN_SCORE:
            best = items[0]["score"]
            ties = [i for i in items if i["score"] >= best - 0.5]
            return Place(
                lat=statistics.median(i["lat"] for i in ties),
                lon=statistics.median(i["lon"] for i in ties),
                settlement=statistics.mode(i["settlement"] for i in ties),
            )
        words = words[:-1]
    return None


async def nearest_open(
    http: httpx.AsyncClient, settings: NotifySettings, lat: float, lon: float, services: tuple[Service, ...]
) -> list[dict[str, Any]]:
    """The nearest points open now offering every service asked for."""
    params: list[tuple[str, str | int | float | bool]] = [
        ("lat", lat),
        ("lon", lon),
        ("limit", MAX_POINTS),
        ("radius_km", settings.lookup_radius_km),
        ("open_now", "true"),
        *(("service", s.value) for s in services),
    ]
    answer = await _get(http, settings, "/v1/search/nearest", params)
    items: list[dict[str, Any]] = answer["items"]
    return items


def entry(item: dict[str, Any], number: int, language: str, settlement: str) -> str:
    """One point as a reply line: number, address, short name (the end, which is cut first when space is short).

    The settlement is left out of both where it is the one asked about, and kept in the address elsewhere.
    """
    if language == "en":
        # Latin text kept inside GSM-7 (typographic quotes too): 160 characters a part instead of 70.
        name = sms_text.latin(item.get("name_en") or item["name_uk"])
        address = sms_text.latin(item.get("address_en") or item["address_uk"])
        own = sms_text.latin(item["settlement"])
    else:
        name, address, own = item["name_uk"], item["address_uk"], item["settlement"]
    name = NOISE.sub("", name).removesuffix(f", {own}")
    if item["settlement"] == settlement:
        address = address.removesuffix(f", {own}")
    dash = "-" if language == "en" else "—"  # GSM-7 has no em dash
    return f"{number}) {address} {dash} {name}"


def _fits(body: str) -> bool:
    return sms_text.parts(body) == 1


def pack(header: str, lines: list[str]) -> tuple[list[str], int]:
    """The header and as many whole lines as fit in MAX_MESSAGES one-part SMS, in order; and how many fitted."""
    messages, placed = [header], 0
    for line in lines:
        if _fits(f"{messages[-1]}\n{line}"):
            messages[-1] = f"{messages[-1]}\n{line}"
        elif placed and len(messages) < MAX_MESSAGES and _fits(line):
            messages.append(line)
        else:
            break
        placed += 1
    return messages, placed


def fit(header: str, lines: list[str]) -> list[str]:
    """Every line in at most MAX_MESSAGES one-part SMS, cutting the longest lines' ends (names) as little as needed."""
    longest = max(map(len, lines), default=0)
    # An ellipsis character would turn a GSM-7 (Latin) text into UCS-2: 70 characters a part instead of 160.
    ellipsis = "..." if sms_text.is_gsm7(header + "".join(lines)) else "…"
    for budget in range(longest, MIN_LINE - 1, -1):
        cut = [
            line if len(line) <= budget else line[: budget - len(ellipsis)].rstrip(" ,-—") + ellipsis for line in lines
        ]
        messages, placed = pack(header, cut)
        if placed == len(lines):
            return messages
    return pack(header, cut)[0] if lines else [header]


def _quote(place: str, language: str) -> str:
    """The place as the resident wrote it, cut to 20 characters; in Latin letters for English replies."""
    if language == "en":
        place = sms_text.latin(place)
        return '"' + (place if len(place) <= 20 else place[:17] + "...") + '"'
    return "«" + (place if len(place) <= 20 else place[:19] + "…") + "»"


def help_reply(language: str) -> str:
    """What to text: a place and, optionally, a service."""
    if language == "en":
        return f"Text a town or address, optionally a service, e.g. {EXAMPLE['en']}"
    return f"Напишіть місто або адресу, напр.: {EXAMPLE['uk']}"


def unknown_place_reply(place: str, language: str) -> str:
    """The place was not found: say so, and show how to ask."""
    if language == "en":
        return f"{_quote(place, language)} not found. Text a town or address, e.g. {EXAMPLE['en']}"
    return f"Не знайшли {_quote(place, language)}. Приклад: {EXAMPLE['uk']}"


def none_open_reply(place: str, language: str, services: tuple[Service, ...], radius_km: float) -> str:
    """No open point near the place (with the services asked for)."""
    if language == "en":
        wanted = f" with {', '.join(s.value.replace('_', ' ') for s in services)}" if services else ""
        return f"No open points{wanted} within {radius_km:g} km of {_quote(place, language)} now. Try later."
    return f"Нема відкритих пунктів біля {_quote(place, language)}. Спробуйте пізніше."


def unavailable_reply(language: str) -> str:
    """Search does not answer: the resident should try again."""
    if language == "en":
        return "Lookup is unavailable right now. Please try again in a few minutes."
    return "Пошук зараз недоступний. Спробуйте за кілька хвилин."


async def answer(http: httpx.AsyncClient, settings: NotifySettings, *, text: str, language: str) -> list[str]:
    """The reply SMS bodies (one or two, each one part) for an inbound lookup text, in uk or en."""
    language = "en" if language == "en" else "uk"
    request = parse(text)
    if not request.place:
        return [help_reply(language)]
    try:
        where = await find_place(http, settings, request.place)
        if where is None:
            return [unknown_place_reply(request.place, language)]
        items = await nearest_open(http, settings, where.lat, where.lon, request.services)
    except SearchUnavailable as exc:
        log.warning("SMS lookup could not ask search: %s", exc)
        return [unavailable_reply(language)]
    if not items:
        return [none_open_reply(request.place, language, request.services, settings.lookup_radius_km)]
    header = "Open points nearby:" if language == "en" else "Відкриті пункти поруч:"
    return fit(header, [entry(item, n, language, where.settlement) for n, item in enumerate(items, 1)])
