"""Replicas: the same events make the same model, however often and in whatever order they arrive."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from poi_cli import stack
from poi_search.app import create_app as create_search
from poi_shared.contracts import OpenState, Visibility
from tests.integration.routes.conftest import serve
from tests.integration.search.conftest import Feed, area, search_settings, status

pytestmark = pytest.mark.integration


def mirror(client: TestClient) -> dict[str, Any]:
    """Everything the replica says through the change feed, from the start: what an integrator's mirror holds."""
    held: dict[str, Any] = {}
    response = client.get("/v1/changes", params={"limit": 1000})
    while True:
        page = response.json()
        for change in page["items"]:
            point = change["point"]
            if point is not None:
                point["status"].pop("age_s")  # the one thing that changes with the clock
            held[change["id"]] = point
        if not page["has_more"]:
            return {k: v for k, v in held.items() if v is not None}
        response = client.get("/v1/changes", params={"cursor": page["next_cursor"], "limit": 1000})


def test_duplicate_and_out_of_order_events_change_nothing(search: TestClient, feed: Feed) -> None:
    here = area(9)
    place = here.point()
    first, _ = feed.publish(place, status(place))
    v2 = place.model_copy(update={"version": 2, "name_uk": "Пункт «Нова назва»"})
    [renamed] = feed.publish(v2)
    [reported] = feed.publish(status(place, version=2, state=OpenState.closed, occupancy=7))
    before = search.get("/v1/search/nearest", params=here.near(limit=1)).json()["items"][0]
    cursor = search.get("/v1/changes").json()
    while cursor["has_more"]:
        cursor = search.get("/v1/changes", params={"cursor": cursor["next_cursor"]}).json()

    feed.repeat(renamed)  # the relay published it again after the broker's de-duplication window
    feed.repeat(reported)
    feed.repeat(first)  # older versions, out of order (a consumer can see them again after a reset)
    feed.publish(status(place, version=1, state=OpenState.open))
    # A relay publishes a subject in order, so the newest version is always the last again: what replicas rebuild from.
    feed.repeat(renamed)
    feed.repeat(reported)

    after = search.get("/v1/search/nearest", params=here.near(limit=1)).json()["items"][0]
    before["status"].pop("age_s"), after["status"].pop("age_s")
    assert after == before and after["name_uk"] == "Пункт «Нова назва»" and after["status"]["state"] == "closed"
    unchanged = search.get("/v1/changes", params={"cursor": cursor["next_cursor"]}).json()
    assert unchanged["items"] == [] and unchanged["next_cursor"] == cursor["next_cursor"]


def test_a_restarted_replica_rebuilds_the_same_model(
    infra: stack.Infrastructure, search_namespace: str, search: TestClient, feed: Feed
) -> None:
    here = area(10)
    kept, hidden, moved = here.point(), here.point(), here.point()
    feed.publish(kept, hidden, moved, status(kept), status(hidden))
    feed.publish(
        hidden.model_copy(update={"version": 2, "visibility": Visibility.hidden}),
        moved.model_copy(update={"version": 2, "lat": moved.lat + 0.2}),
        status(kept, version=2, state=OpenState.full),
    )
    first = mirror(search)
    assert str(kept.id) in first and str(hidden.id) not in first

    for client in serve(create_search(search_settings(infra, search_namespace))):  # a new replica, from scratch
        Feed(infra.nats_url, search_namespace, client, heads=dict(feed.heads)).wait()
        assert mirror(client) == first
        assert _same_but_ages(client, search, here.near(limit=50))


def _same_but_ages(one: TestClient, other: TestClient, params: dict[str, Any]) -> bool:
    """The same answer from two replicas, but for the status ages, which move with the clock."""
    answers = []
    for client in (one, other):
        body = client.get("/v1/search/nearest", params=params).json()
        for item in body["items"]:
            item["status"].pop("age_s")
        answers.append(body["items"])
    return answers[0] == answers[1]
