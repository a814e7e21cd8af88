"""Points that stop reporting are downgraded to unknown, per category, with a stale event; coordinators list them."""

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from poi_cli import stack
from poi_shared.contracts import STATUS_STALE
from tests.integration.inprocess import eventually
from tests.integration.status.conftest import StatusApp, bearer, status_app

pytestmark = pytest.mark.integration
STALE_AFTER_S = 1.0


@pytest_asyncio.fixture(scope="module")
async def app(infra: stack.Infrastructure, namespace: str) -> AsyncIterator[StatusApp]:
    async with status_app(
        infra,
        namespace,
        stale_after_state_s=STALE_AFTER_S,
        stale_after_business_s=3600,
        stale_after_essential_s=3600,
        stale_check_interval_s=0.2,
        stale_batch=2,  # several batches for the points below
    ) as running:
        yield running


async def state_of(app: StatusApp, point_id: object) -> str:
    return (await app.client.get(f"/v1/points/{point_id}/status")).json()["state"]


async def test_a_point_that_stops_reporting_becomes_unknown_with_a_stale_event(app: StatusApp) -> None:
    area = "UA3202"
    state_points = [await app.add_point(katotth=f"{area}00100100000{n}") for n in range(5)]
    business = await app.add_point(katotth=f"{area}0010010000009", category="business")
    closed = await app.add_point(katotth=f"{area}0010010000008")
    for point_id in [*state_points, business]:
        assert (await app.report(point_id, {"state": "open", "note": "працюємо"})).status_code == 201
    await app.report(state_points[4], {"occupancy": 100})  # full goes stale too
    await app.report(closed, {"state": "closed"})

    async def all_downgraded() -> bool:
        return all([await state_of(app, p) == "unknown" for p in state_points])

    await eventually(all_downgraded, "the sweep downgrades the state points")
    # Both were reported at the same time: the business point's own, longer, threshold keeps it open.
    assert await state_of(app, business) == "open"
    assert await state_of(app, closed) == "closed", "only claims to take people go stale"

    read = (await app.client.get(f"/v1/points/{state_points[0]}/status")).json()
    assert (read["cause"], read["previous_state"], read["note"]) == ("stale", "open", "працюємо")
    assert read["age_s"] >= STALE_AFTER_S - 1 and read["reported_at"] < read["changed_at"]
    events = await app.events(str(state_points[4]))
    stale = [e for e in events if e.type == STATUS_STALE.type]
    assert len(stale) == 1 and stale[0].data.state == "unknown" and stale[0].data.previous_state == "full"

    listed = await app.client.get(
        "/v1/status/lists/stale", headers=bearer("coordinator", katotth=[area]), params={"limit": 3}
    )
    assert listed.status_code == 200, listed.text
    page = listed.json()
    more = await app.client.get(
        "/v1/status/lists/stale",
        headers=bearer("coordinator", katotth=[area]),
        params={"limit": 3, "cursor": page["next_cursor"]},
    )
    assert more.json()["next_cursor"] is None
    seen = [i["point_id"] for i in page["items"] + more.json()["items"]]
    assert sorted(seen) == sorted(str(p) for p in state_points), "every stale point once, across pages"
    ages = [i["age_s"] for i in page["items"] + more.json()["items"]]
    assert ages == sorted(ages, reverse=True), "the longest silent first"

    # Reporting again brings it back; a report that does not say the state cannot.
    assert (await app.report(state_points[0], {"occupancy": 3})).status_code == 422
    back = await app.report(state_points[0], {"state": "open"})
    assert back.status_code == 201 and back.json()["previous_state"] == "unknown"


async def test_a_coordinator_sees_only_their_scope_and_a_bad_cursor_is_refused(app: StatusApp) -> None:
    coordinator = bearer("coordinator", katotth=["UA05"])
    empty = await app.client.get("/v1/status/lists/stale", headers=coordinator)
    assert empty.status_code == 200 and empty.json()["items"] == []
    bad = await app.client.get("/v1/status/lists/stale", headers=coordinator, params={"cursor": "bm90IGEgY3Vyc29y"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["location"] == "query.cursor"
