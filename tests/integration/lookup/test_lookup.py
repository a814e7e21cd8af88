"""SMS lookup against the real search app (in process, its own namespace) fed the national demo register.

The register is the one `poi seed` loads (GeoNames settlements, invented streets), plus one point on Khreshchatyk;
status events open most points. answer() asks search over HTTP exactly as notify does, through an ASGI transport
into the running app.
"""

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from poi_cli import stack
from poi_cli.demo import national_register
from poi_notify.lookup.service import answer
from poi_notify.settings import NotifySettings
from poi_notify.sms.text import parts
from poi_search.app import create_app as create_search
from poi_shared.contracts import OpenState, PointState, Schedule, StatusState
from tests.conftest import drop_namespace
from tests.integration.routes.conftest import serve
from tests.integration.search.conftest import Feed, search_settings

pytestmark = pytest.mark.integration
POINTS = 2500
KHRESHCHATYK = {
    "code": "T-KHRESHCHATYK",
    "name_uk": "Пункт незламності — ЦНАП, Київ",
    "name_en": "Invincibility Point — Administrative Services Centre, Kyiv",
    "category": "state",
    "host_type": "administration",
    "lat": 50.4488,
    "lon": 30.5213,
    "katotth": "UA80000000000093317",
    "address_uk": "вул. Хрещатик, 22, Київ",
    "address_en": "22 Khreshchatyk St, Kyiv",
    "settlement": "Київ",
    "capacity": 200,
    "services": ["heat", "charging", "water"],
    "visibility": "public",
}


@pytest.fixture(scope="module")
def search(infra: stack.Infrastructure, namespace: str) -> Iterator[TestClient]:
    """A search app of this module's own, fed the national register with most points open."""
    ns = f"{namespace}l"
    client_iter = serve(create_search(search_settings(infra, ns)))
    client = next(client_iter)
    try:
        feed = Feed(infra.nats_url, ns, client)
        now = datetime.now(UTC)
        points = [
            PointState(id=uuid.uuid4(), version=1, schedule=Schedule(), updated_at=now, **_fields(p))
            for p in [*national_register(POINTS), KHRESHCHATYK]
        ]
        statuses = [
            StatusState(
                point_id=p.id,
                version=1,
                state=OpenState.closed if n % 4 == 3 else OpenState.open,  # a quarter closed
                reported_at=now,
                changed_at=now,
                reported_by="tests",
            )
            for n, p in enumerate(points)
        ]
        feed.publish(*points, *statuses)
        yield client
    finally:
        next(client_iter, None)
        asyncio.run(drop_namespace(infra, ns))
        cache = redis.Redis.from_url(infra.redis_url)
        try:
            for key in cache.scan_iter(f"{ns}:*"):
                cache.delete(key)
        finally:
            cache.close()


def _fields(point: dict[str, Any]) -> dict[str, Any]:
    """A register row as PointState fields (the register's contact phone stays in the registry)."""
    return {k: v for k, v in point.items() if k not in ("contact_phone", "schedule")}


def ask(search: TestClient, body: str, language: str = "uk") -> list[str]:
    """answer() for an inbound text, run in the search app's own event loop over an ASGI transport."""
    settings = NotifySettings(search_url="http://search")

    async def run() -> list[str]:
        transport = httpx.ASGITransport(app=search.app)
        async with httpx.AsyncClient(transport=transport) as http:
            return await answer(http, settings, text=body, language=language)

    assert search.portal is not None
    replies = search.portal.call(run)
    assert 1 <= len(replies) <= 2 and all(parts(r) == 1 for r in replies), replies
    return replies


def test_an_address_in_cyrillic_or_latin_gets_the_nearest_open_points(search: TestClient) -> None:
    uk = "\n".join(ask(search, "Київ Хрещатик 22"))
    assert uk.startswith("Відкриті пункти поруч:\n1) вул. Хрещатик, 22 — ЦНАП")
    assert "3) " in uk and "4) " not in uk
    en = "\n".join(ask(search, "Kyiv Khreshchatyk 22", "en"))
    assert en.startswith("Open points nearby:\n1) 22 Khreshchatyk St - Administrative Services Centre")
    assert "3) " in en and en.isascii()
    # A street search does not know: the settlement still gives the points nearest its middle.
    unknown_street = "\n".join(ask(search, "Київ Неіснуючавулиця 7"))
    assert unknown_street.startswith("Відкриті пункти поруч:\n1) ") and "3) " in unknown_street


def test_a_settlement_with_a_service_word_finds_open_points_offering_it(search: TestClient) -> None:
    text = "\n".join(ask(search, "Бровари ТЕПЛО"))
    # Points in the town asked about show no town; one elsewhere would name its own.
    assert text.startswith("Відкриті пункти поруч:\n1) ") and "3) " in text and "Київ" not in text
    lviv = "\n".join(ask(search, "lviv heat", "en"))
    assert lviv.startswith("Open points nearby:\n1) ") and "3) " in lviv


def test_unknown_places_and_empty_texts_get_a_helpful_reply(search: TestClient) -> None:
    assert ask(search, "Ззззкщшхвф") == ["Не знайшли «Ззззкщшхвф». Приклад: Київ Хрещатик 22 ТЕПЛО"]
    assert ask(search, "Qwxzv", "en")[0].startswith('"Qwxzv" not found. Text a town or address, e.g. Kyiv')
    assert ask(search, "ТЕПЛО") == ["Напишіть місто або адресу, напр.: Київ Хрещатик 22 ТЕПЛО"]


def test_when_search_does_not_answer_the_resident_is_told_to_try_again() -> None:
    settings = NotifySettings(search_url="http://127.0.0.1:9", search_timeout_s=2)

    async def run() -> list[str]:
        async with httpx.AsyncClient() as http:
            return await answer(http, settings, text="Київ", language="uk")

    assert asyncio.run(run()) == ["Пошук зараз недоступний. Спробуйте за кілька хвилин."]
