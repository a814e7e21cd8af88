"""Alert texts in Ukrainian and English: one UCS-2 SMS (70 characters) where possible, never over three parts.

A message is rendered at decreasing levels of detail (services, a second named point, the settlement after the
street, the full name) until it fits one SMS; if no level fits one, the most detailed that fits three is sent.
"""

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from poi_notify.sms import text

OPENED, CLOSED, FULL, PLACES_AGAIN = "opened", "closed", "full", "places_again"
STALE, LOW_FUEL = "stale", "low_fuel"

# What each change is called, in capitals so it stands out on a basic phone's screen.
_CHANGE_WORDS = {
    "uk": {OPENED: "ВІДКРИТО", CLOSED: "ЗАЧИНЕНО", FULL: "НЕМАЄ МІСЦЬ", PLACES_AGAIN: "Є МІСЦЯ"},
    "en": {OPENED: "OPEN", CLOSED: "CLOSED", FULL: "FULL", PLACES_AGAIN: "PLACES AGAIN"},
}
_NEAR = {"uk": "Відкрито поруч", "en": "Open near you"}
_MORE = {"uk": "ще {n} поруч", "en": "{n} more nearby"}
_OPS = {
    "uk": {STALE: "немає звітів", LOW_FUEL: "мало пального", "hours": "год", "prefix": "ПН"},
    "en": {STALE: "no reports", LOW_FUEL: "low fuel", "hours": "h", "prefix": "POI"},
}
# Short service names for SMS (the catalogue's labels are written for screens).
SHORT_SERVICES = {
    "heat": ("тепло", "heat"),
    "water": ("вода", "water"),
    "electricity": ("світло", "power"),
    "charging": ("зарядка", "charging"),
    "internet": ("інтернет", "internet"),
    "mobile_connection": ("зв'язок", "mobile"),
    "starlink": ("Starlink", "Starlink"),
    "generator": ("генератор", "generator"),
    "rest": ("відпочинок", "rest"),
    "sleeping_places": ("ночівля", "beds"),
    "toilets": ("туалет", "toilets"),
    "first_aid": ("аптечка", "first aid"),
    "mother_child": ("мати і дитина", "mother&child"),
    "hot_drinks": ("чай", "hot drinks"),
    "food": ("їжа", "food"),
    "wheelchair_accessible": ("візки", "wheelchair"),
    "pets": ("тварини", "pets"),
}
# Which services matter most in a blackout, so the few an SMS names are the useful ones.
_SERVICE_ORDER = list(SHORT_SERVICES)
# Every point is a Point of Invincibility: its name need not say so in an SMS.
_GENERIC_PREFIX = re.compile(r"^\s*(?:Пункт незламності|Invincibility Point)\s*[—–-]\s*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class PointNews:
    """One point's change as a message tells it."""

    change: str
    name: str
    address: str
    settlement: str | None = None
    services: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OpsNews:
    """A point a coordinator should look at."""

    change: str
    code: str
    name: str | None
    fuel_hours: float | None = None


@dataclass(frozen=True, slots=True)
class _Detail:
    named: int  # how many nearby open points are named
    services: int  # how many services each names
    settlement: bool  # whether addresses keep the settlement after the street
    name_max: int | None  # names cut to this many characters
    more: bool  # whether the message counts the open points it does not name


_LEVELS = (
    _Detail(2, 3, True, None, True),
    _Detail(2, 3, False, None, True),
    _Detail(2, 2, False, None, True),
    _Detail(1, 3, False, None, True),
    _Detail(1, 2, False, None, True),
    _Detail(1, 1, False, None, True),
    _Detail(1, 2, False, None, False),
    _Detail(1, 1, False, None, False),
    _Detail(1, 1, False, 28, False),
    _Detail(1, 1, False, 18, False),
    _Detail(1, 0, False, 18, False),
    _Detail(1, 0, False, 12, False),
)


# The most nearby open points a message names; the others are only counted.
MOST_NAMED = max(level.named for level in _LEVELS)


def short_name(name: str, address: str | None, settlement: str | None = None) -> str:
    """The name without the generic 'Point of Invincibility' and without the settlement the address ends with."""
    stripped = _GENERIC_PREFIX.sub("", name).strip() or name.strip()
    place = address.rsplit(",", 1)[-1].strip() if address else None
    for suffix in {place, settlement} - {None, ""}:
        if stripped.endswith(f", {suffix}") and len(stripped) > len(f", {suffix}"):
            stripped = stripped[: -len(f", {suffix}")].rstrip()
    return stripped


def cut(value: str, limit: int | None) -> str:
    """The value cut at a word boundary to at most limit characters, marked with an ellipsis."""
    if limit is None or len(value) <= limit:
        return value
    head = value[: limit - 1]
    space = head.rfind(" ")
    if space >= limit // 2:
        head = head[:space]
    return head.rstrip(" ,.;—-") + "…"


def street_address(address: str, settlement: str | None) -> str:
    """The address without what follows the house number (district, settlement): 'вул. Хрещатик, 1'."""
    parts = [p.strip() for p in address.split(",")]
    if len(parts) >= 3:
        return ", ".join(parts[:2])
    if settlement and len(parts) == 2 and parts[1] == settlement:
        return parts[0]
    return address


def service_words(services: Sequence[str], language: str, limit: int) -> str:
    """Up to limit short service names, most useful first."""
    index = 0 if language == "uk" else 1
    known = sorted((s for s in services if s in SHORT_SERVICES), key=_SERVICE_ORDER.index)
    return ", ".join(SHORT_SERVICES[s][index] for s in known[:limit])


def _place(news: PointNews, language: str, detail: _Detail, *, services: bool) -> str:
    return _place_text(news.name, news.address, news.settlement, news.services, language, detail, services)


# A flush tells the same few thousand points to up to a million phones, at several levels of detail each.
@functools.lru_cache(maxsize=65_536)
def _place_text(
    name: str,
    address: str,
    settlement: str | None,
    services: tuple[str, ...],
    language: str,
    detail: _Detail,
    with_services: bool,
) -> str:
    name = cut(short_name(name, address, settlement), detail.name_max)
    address = address if detail.settlement else street_address(address, settlement)
    line = f"{name}, {address}" if address and address != name else name
    words = service_words(services, language, detail.services) if with_services and detail.services else ""
    return f"{line} ({words})" if words else line


def _render(language: str, points: Sequence[PointNews], named: Sequence[PointNews], count: int, detail: _Detail) -> str:
    words = _CHANGE_WORDS[language]
    pieces: list[str] = []
    # Closing and full first: someone may be on the way there.
    for news in sorted(points, key=lambda n: n.change not in (CLOSED, FULL)):
        pieces.append(f"{words[news.change]}: {_place(news, language, detail, services=False)}")
    shown = named[: detail.named]
    if shown:
        near = "; ".join(_place(n, language, detail, services=True) for n in shown)
        more = count - len(shown)
        tail = f"; {_MORE[language].format(n=more)}" if more and detail.more else ""
        pieces.append(f"{_NEAR[language]}: {near}{tail}")
    return ". ".join(pieces)


def fit(renderings: Iterable[str]) -> str:
    """The first rendering that fits one SMS; else the first that fits MAX_PARTS; else the last, cut to fit."""
    # Renderings may be made lazily: most messages fit one SMS at the first level, so the others are never made.
    made: list[str] = []
    for body in renderings:
        if text.parts(body) == 1:
            return body
        made.append(body)
    for body in made:
        if text.parts(body) <= text.MAX_PARTS:
            return body
    body = made[-1]
    while text.parts(body) > text.MAX_PARTS:
        body = cut(body, len(body) - 10)
    return body


def alert_body(language: str, points: Sequence[PointNews], nearby: Sequence[PointNews]) -> str:
    """One message for a window: the subscribed points' changes, then the nearest open points (nearest first)."""
    language = language if language in _CHANGE_WORDS else "uk"
    # At most three subscribed points are told by name; a phone rarely follows more. Only the nearby points a
    # message may name and how many there are make its text.
    return _alert_body(language, tuple(points)[:3], tuple(nearby)[:MOST_NAMED], len(nearby))


# A flush sends the same texts to many phones, and the next flush mostly the same ones again: each is rendered once.
@functools.lru_cache(maxsize=131_072)
def _alert_body(language: str, points: tuple[PointNews, ...], named: tuple[PointNews, ...], count: int) -> str:
    return fit(_render(language, points, named, count, detail) for detail in _LEVELS)


def _ops_piece(news: OpsNews, language: str, name_max: int | None) -> str:
    words = _OPS[language]
    what = words[news.change]
    if news.change == LOW_FUEL and news.fuel_hours is not None:
        what = f"{what} ({news.fuel_hours:.1f} {words['hours']})"
    name = f" {cut(short_name(news.name, None), name_max)}" if news.name and name_max != 0 else ""
    return f"{words['prefix']} {news.code}{name}: {what}"


def ops_body(language: str, items: Sequence[OpsNews]) -> str:
    """One message to a coordinator contact: each point by its code (and name where it fits) and what is wrong."""
    language = language if language in _OPS else "uk"
    renderings = []
    for name_max in (None, 24, 12, 0):
        for shown in (len(items), 4, 2):
            pieces = [_ops_piece(n, language, name_max) for n in items[:shown]]
            more = len(items) - len(pieces)
            if more > 0:
                pieces.append(f"+{more}")
            renderings.append("; ".join(pieces))
    return fit(renderings)
