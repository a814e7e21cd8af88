"""Area activation touches exactly the on-blackout points of the areas in the coordinator's scope, once."""

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from poi_cli import stack
from poi_shared.contracts import AREA_ACTIVATED, AREA_DEACTIVATED, STATUS_CHANGED, area_key
from tests.integration.status.conftest import StatusApp, bearer, status_app

pytestmark = pytest.mark.integration
LVIV = "UA46"  # oblast
LVIV_RAION = "UA4606"
KYIV_CITY = "UA80"


@pytest_asyncio.fixture(scope="module")
async def app(infra: stack.Infrastructure, namespace: str) -> AsyncIterator[StatusApp]:
    async with status_app(infra, namespace) as running:
        yield running


async def changed_versions(app: StatusApp, point_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[int]]:
    """The versions of each point's changed events."""
    return {p: [e.data.version for e in await app.events(str(p)) if e.type == STATUS_CHANGED.type] for p in point_ids}


async def test_activation_opens_exactly_the_on_blackout_points_in_scope_and_a_repeat_changes_nothing(
    app: StatusApp,
) -> None:
    code = "0{:02d}0010010000"
    in_scope = [
        await app.add_point(katotth=f"{LVIV_RAION}{code.format(n)}{n}", schedule_kind="on_blackout") for n in range(3)
    ]
    other_raion = await app.add_point(katotth=f"UA4608{code.format(9)}9", schedule_kind="on_blackout")
    business = await app.add_point(
        katotth=f"{LVIV_RAION}{code.format(4)}4", schedule_kind="on_blackout", category="business"
    )
    always_open = await app.add_point(katotth=f"{LVIV_RAION}{code.format(5)}5", schedule_kind="always")
    retired = await app.add_point(katotth=f"{LVIV_RAION}{code.format(6)}6", schedule_kind="on_blackout", retired=True)
    outside = await app.add_point(katotth="UA80000000000093317", schedule_kind="on_blackout")
    already_open = await app.add_point(katotth=f"{LVIV_RAION}{code.format(7)}7", schedule_kind="on_blackout")
    assert (await app.report(already_open, {"state": "open", "occupancy": 4})).status_code == 201
    coordinator = bearer("coordinator", katotth=[LVIV], sub="coordinator-lviv")

    response = await app.client.post(
        "/v1/status/areas/activate", json={"katotth": [LVIV_RAION], "category": "state"}, headers=coordinator
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["points_changed"] == 3 and body["state"] == "open" and body["action"] == "activate"
    assert body["areas"][0]["katotth_prefix"] == LVIV_RAION
    assert body["areas"][0]["points_in_area"] == 4, "the three and the one already open; not business, retired"

    for point_id in in_scope:
        read = (await app.client.get(f"/v1/points/{point_id}/status")).json()
        assert (read["state"], read["cause"], read["version"]) == ("open", "activation", 1)
    untouched = [other_raion, business, always_open, outside]
    for point_id in untouched:
        assert (await app.client.get(f"/v1/points/{point_id}/status")).json()["version"] == 0
    assert (await app.client.get(f"/v1/points/{already_open}/status")).json()["occupancy"] == 4
    assert await app.pool.fetchval("SELECT version FROM point_status WHERE point_id = $1", retired) == 0

    versions = await changed_versions(app, [*in_scope, *untouched, already_open])
    assert all(versions[p] == [1] for p in in_scope), "each point its own changed event"
    assert all(versions[p] == [] for p in untouched) and versions[already_open] == [1]
    area_events = await app.events(area_key(LVIV_RAION))
    assert [(e.type, e.data.points_changed, e.data.requested_by) for e in area_events] == [
        (AREA_ACTIVATED.type, 3, "coordinator-lviv")
    ]

    again = await app.client.post(
        "/v1/status/areas/activate", json={"katotth": [LVIV_RAION], "category": "state"}, headers=coordinator
    )
    assert again.status_code == 200 and again.json()["points_changed"] == 0
    assert again.json()["areas"][0]["event_id"] is None
    assert await changed_versions(app, in_scope) == {p: [1] for p in in_scope}, "a repeat emits nothing"
    assert len(await app.events(area_key(LVIV_RAION))) == 1

    # The whole oblast, any category: the rest of Lviv's on-blackout points, and nothing already open.
    oblast = await app.client.post("/v1/status/areas/activate", json={"katotth": [LVIV]}, headers=coordinator)
    assert oblast.json()["points_changed"] == 2  # the other raion's point and the business one
    off = await app.client.post(
        "/v1/status/areas/deactivate", json={"katotth": [LVIV, LVIV_RAION]}, headers=coordinator
    )
    assert off.status_code == 200 and [a["katotth_prefix"] for a in off.json()["areas"]] == [LVIV]
    assert off.json()["points_changed"] == 6, "every on-blackout point in service, the one opened by report too"
    read = (await app.client.get(f"/v1/points/{already_open}/status")).json()
    assert (read["state"], read["cause"], read["previous_state"], read["occupancy"]) == (
        "closed",
        "deactivation",
        "open",
        None,
    )
    assert [e.type for e in await app.events(area_key(LVIV))] == [AREA_ACTIVATED.type, AREA_DEACTIVATED.type]
    assert (await app.client.get(f"/v1/points/{outside}/status")).json()["version"] == 0


async def test_standby_leaves_open_points_open(app: StatusApp) -> None:
    area = "UA0702"
    waiting = await app.add_point(katotth=f"{area}0010010000001", schedule_kind="on_blackout")
    working = await app.add_point(katotth=f"{area}0010010000002", schedule_kind="on_blackout")
    await app.report(working, {"state": "open"})
    coordinator = bearer("coordinator", katotth=[area])
    response = await app.client.post(
        "/v1/status/areas/activate", json={"katotth": [area], "state": "standby"}, headers=coordinator
    )
    assert response.json()["points_changed"] == 1
    assert (await app.client.get(f"/v1/points/{waiting}/status")).json()["state"] == "standby"
    assert (await app.client.get(f"/v1/points/{working}/status")).json()["state"] == "open"
    opened = await app.client.post("/v1/status/areas/activate", json={"katotth": [area]}, headers=coordinator)
    assert opened.json()["points_changed"] == 1
    assert (await app.client.get(f"/v1/points/{waiting}/status")).json()["previous_state"] == "standby"


async def test_an_area_outside_the_coordinators_scope_changes_nothing(app: StatusApp) -> None:
    area = "UA1202"
    point_id = await app.add_point(katotth=f"{area}0010010000001", schedule_kind="on_blackout")
    raion_coordinator = bearer("coordinator", katotth=["UA1204"])
    response = await app.client.post(
        "/v1/status/areas/activate", json={"katotth": [area, "UA1204"]}, headers=raion_coordinator
    )
    assert response.status_code == 403 and area in response.json()["detail"]
    operator = bearer("operator", points=[str(point_id)])
    assert (
        await app.client.post("/v1/status/areas/activate", json={"katotth": [area]}, headers=operator)
    ).status_code == 403
    assert (await app.client.get(f"/v1/points/{point_id}/status")).json()["version"] == 0
    admin = await app.client.post("/v1/status/areas/activate", json={"katotth": [area]}, headers=bearer("admin"))
    assert admin.json()["points_changed"] == 1


async def test_state_counts_follow_the_switches(app: StatusApp) -> None:
    area = "UA2102"
    points = [await app.add_point(katotth=f"{area}00100100000{n:02d}", schedule_kind="on_blackout") for n in range(4)]
    coordinator = bearer("coordinator", katotth=[area])
    await app.client.post("/v1/status/areas/activate", json={"katotth": [area]}, headers=coordinator)
    await app.report(points[0], {"fuel_hours": 1})
    counts = (await app.client.get("/v1/status/stats/states", headers=coordinator)).json()
    assert counts["by"] == "oblast" and counts["total"]["katotth"] == "UA"
    assert counts["areas"] == [
        {"katotth": "UA21", "points": 4, "states": {**counts["areas"][0]["states"], "open": 4}, "low_fuel": 1}
    ]
    assert counts["total"]["states"]["open"] == 4 and counts["total"]["states"]["unknown"] == 0
