"""The live feed over real HTTP: it delivers status changes in the client's area, skips hidden points, resumes
with Last-Event-ID from where the client left, and tells a client that missed too much to reload."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
import uvicorn

from poi_cli import embedded, stack
from tests.integration.status.conftest import StatusApp, status_app

pytestmark = pytest.mark.integration
REPLAY_MAX = 5
LVIV, KYIV = "UA46060250010015970", "UA80000000000093317"


@dataclass
class Feed:
    """A running app served over HTTP."""

    app: StatusApp
    url: str


@pytest_asyncio.fixture(scope="module")
async def feed(infra: stack.Infrastructure, namespace: str) -> AsyncIterator[Feed]:
    async with status_app(infra, namespace, feed_replay_max=REPLAY_MAX, feed_heartbeat_s=0.5) as running:
        port = embedded.free_port()
        transport = running.client._transport
        assert isinstance(transport, httpx.ASGITransport)
        # The app's lifespan already runs (status_app); uvicorn only serves HTTP for it.
        server = uvicorn.Server(uvicorn.Config(transport.app, host="127.0.0.1", port=port, lifespan="off"))
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        try:
            yield Feed(running, f"http://127.0.0.1:{port}")
        finally:
            server.should_exit = True
            await task


@dataclass
class Received:
    """One server-sent event."""

    event: str | None
    id: str | None
    data: dict | None
    comment: str | None


async def read_events(response: httpx.Response) -> AsyncIterator[Received]:
    """Parse a text/event-stream body event by event."""
    fields: dict[str, list[str]] = {}
    async for line in response.aiter_lines():
        if line == "":
            if fields:
                data = "\n".join(fields.get("data", [])) or None
                yield Received(
                    fields.get("event", [None])[0],
                    fields.get("id", [None])[0],
                    json.loads(data) if data else None,
                    "\n".join(fields.get("", [])) or None,
                )
            fields = {}
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name, []).append(value.removeprefix(" "))


@contextlib.asynccontextmanager
async def following(url: str, **headers: str) -> AsyncIterator[AsyncIterator[Received]]:
    async with httpx.AsyncClient(timeout=30) as client, client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield read_events(response)


async def next_event(events: AsyncIterator[Received], *, skip_comments: bool = True) -> Received:
    """The next event (comments, i.e. heartbeats, skipped unless asked for); fails after a generous bound."""
    async with asyncio.timeout(30):
        async for received in events:
            if received.comment is not None and received.event is None and skip_comments:
                continue
            return received
    raise AssertionError("the feed ended")


async def test_the_feed_delivers_changes_in_the_area_and_resumes_where_the_client_left(feed: Feed) -> None:
    app = feed.app
    lviv = await app.add_point(katotth=LVIV)
    kyiv = await app.add_point(katotth=KYIV)
    hidden = await app.add_point(katotth=LVIV, visibility="hidden")
    url = f"{feed.url}/v1/status/feed?katotth=UA46"

    async with following(url) as events:
        for point_id, body in ((kyiv, {"state": "open"}), (hidden, {"state": "open"}), (lviv, {"state": "open"})):
            assert (await app.report(point_id, body)).status_code == 201
        first = await next_event(events)
        assert first.event == "changed" and first.data is not None
        assert first.data["point_id"] == str(lviv) and first.data["state"] == "open" and first.data["version"] == 1
        assert "reported_by" not in first.data and first.data["age_s"] is not None
        assert first.id is not None and int(first.id) > 0
        heartbeat = await next_event(events, skip_comments=False)
        assert heartbeat.comment == "heartbeat", "an idle feed keeps the connection alive"

    # Missed while away: two changes in Lviv (one with a low_fuel event beside it) and one in Kyiv.
    await app.report(lviv, {"occupancy": 10})
    await app.report(kyiv, {"occupancy": 1})
    await app.report(lviv, {"fuel_hours": 2})
    await app.published()
    async with following(url, **{"Last-Event-ID": first.id}) as events:
        missed = [await next_event(events) for _ in range(3)]
        assert [(e.event, e.data["version"]) for e in missed if e.data] == [
            ("changed", 2),
            ("changed", 3),
            ("low_fuel", 3),
        ]
        assert [int(e.id or 0) for e in missed] == sorted(int(e.id or 0) for e in missed)
        await app.report(lviv, {"occupancy": 11})
        live = await next_event(events)
        assert (live.event, live.data and live.data["version"]) == ("changed", 4)

    # The same resume as a query parameter, for clients that cannot send the header.
    async with following(f"{url}&after={missed[-1].id}") as events:
        again = await next_event(events)
        assert (again.id, again.data and again.data["version"]) == (live.id, 4)


async def test_a_client_that_missed_too_much_is_told_to_reload(feed: Feed) -> None:
    app = feed.app
    point_id = await app.add_point(katotth=LVIV)
    await app.report(point_id, {"state": "open"})
    await app.published()
    head = (await app.js.stream_info(f"{app.settings.namespace.upper()}_STATUS")).state.last_seq
    for occupancy in range(REPLAY_MAX + 2):
        await app.report(point_id, {"occupancy": occupancy})
    await app.published()
    async with following(f"{feed.url}/v1/status/feed?katotth=UA46", **{"Last-Event-ID": str(head)}) as events:
        reset = await next_event(events)
        assert reset.event == "reset" and reset.data is not None and "missed" in reset.data["reason"]
        assert reset.id is not None and int(reset.id) >= head + REPLAY_MAX + 2
        await app.report(point_id, {"occupancy": 99})
        assert (await next_event(events)).data["occupancy"] == 99  # type: ignore[index]


async def test_a_bad_last_event_id_is_refused(feed: Feed) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{feed.url}/v1/status/feed", headers={"Last-Event-ID": "yesterday"})
        assert response.status_code == 422
        assert response.json()["errors"][0]["location"] == "header.Last-Event-ID"
        bad_area = await client.get(f"{feed.url}/v1/status/feed", params={"katotth": "Lviv"})
        assert bad_area.status_code == 422
