"""Reports against real PostgreSQL, Redis and NATS: merging, derived full and low fuel, events only on change,
confirmations, idempotent retries, visitors, retired and hidden points."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import date

import asyncpg
import pytest
import pytest_asyncio

from poi_cli import stack
from poi_shared.auth import Principal, Role
from poi_shared.contracts import STATUS_CHANGED, STATUS_LOW_FUEL, StatusState
from poi_status.reports import service
from poi_status.reports.models import StatusReport
from poi_status.reports.service import Recorded, ReportWriter
from tests.integration.status.conftest import StatusApp, bearer, status_app

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def app(infra: stack.Infrastructure, namespace: str) -> AsyncIterator[StatusApp]:
    async with status_app(infra, namespace) as running:
        yield running


def states(events: list, event_type: str = STATUS_CHANGED.type) -> list[StatusState]:
    return [e.data for e in events if e.type == event_type]


async def test_a_partial_report_keeps_the_rest_and_every_event_carries_the_full_state(app: StatusApp) -> None:
    point_id = await app.add_point(capacity=50, services=("heat", "charging", "internet"))
    first = await app.report(
        point_id,
        {
            "state": "open",
            "services": {"heat": True, "charging": True},
            "power": "generator",
            "fuel_hours": 9.5,
            "internet": "starlink",
            "occupancy": 12,
            "note": "Вхід з двору",
        },
    )
    assert first.status_code == 201, first.text
    second = await app.report(point_id, {"occupancy": 14, "services": {"internet": False}})
    assert second.status_code == 201, second.text

    read = (await app.client.get(f"/v1/points/{point_id}/status")).json()
    assert read["version"] == 2 and read["state"] == "open" and read["occupancy"] == 14
    assert (read["power"], read["fuel_hours"], read["internet"], read["note"]) == (
        "generator",
        9.5,
        "starlink",
        "Вхід з двору",
    )
    assert {name: s["available"] for name, s in read["services"].items()} == {
        "heat": True,
        "charging": True,
        "internet": False,
    }
    assert read["services"]["heat"]["confirmed_at"] < read["services"]["internet"]["confirmed_at"]
    assert read["capacity"] == 50 and read["cause"] == "report" and read["previous_state"] == "open"
    assert "reported_by" not in read and 0 <= read["age_s"] <= 60

    published = states(await app.events(str(point_id)))
    assert [s.version for s in published] == [1, 2]
    assert published[1].power == "generator" and published[1].occupancy == 14 and published[1].note == "Вхід з двору"
    assert published[1].reported_by == "t"


async def test_full_is_derived_from_occupancy_and_lifted_when_places_free_up(app: StatusApp) -> None:
    point_id = await app.add_point(capacity=40)
    for occupancy, expected in ((39, "open"), (40, "full"), (55, "full"), (30, "open")):
        response = await app.report(point_id, {"state": "open"} if occupancy == 39 else {"occupancy": occupancy})
        if occupancy == 39:
            response = await app.report(point_id, {"occupancy": 39})
        assert response.status_code == 201, response.text
        assert response.json()["state"] == expected, f"occupancy {occupancy}"
    published = states(await app.events(str(point_id)))
    assert [(s.state, s.previous_state) for s in published][-3:] == [
        ("full", "open"),
        ("full", "full"),
        ("open", "full"),
    ]


async def test_low_fuel_is_flagged_and_its_event_fires_only_when_fuel_drops_under_the_threshold(app: StatusApp) -> None:
    point_id = await app.add_point()
    await app.report(point_id, {"state": "open", "power": "generator", "fuel_hours": 10})
    for fuel in (5.5, 4, 20, 2):
        response = await app.report(point_id, {"fuel_hours": fuel})
        assert response.status_code == 201 and response.json()["low_fuel"] == (fuel < 6), response.text
    events = await app.events(str(point_id))
    low = states(events, STATUS_LOW_FUEL.type)
    assert [s.fuel_hours for s in low] == [5.5, 2.0], "once per drop under the threshold, not per low report"
    assert all(s.low_fuel for s in low)
    # Each low_fuel event follows the changed event of the same version.
    types = [(e.type, e.data.version) for e in events]
    assert types.index((STATUS_LOW_FUEL.type, 2)) == types.index((STATUS_CHANGED.type, 2)) + 1


async def test_a_confirmation_refreshes_reported_at_and_is_published_only_when_the_last_one_is_old(
    app: StatusApp,
) -> None:
    point_id = await app.add_point()
    first = (await app.report(point_id, {"state": "open", "occupancy": 3})).json()
    again = await app.report(point_id, {"state": "open", "occupancy": 3})
    assert again.status_code == 201 and again.json()["version"] == first["version"] + 1
    assert again.json()["reported_at"] > first["reported_at"]
    assert again.json()["changed_at"] == first["changed_at"], "a confirmation changes nothing but its time"
    read = (await app.client.get(f"/v1/points/{point_id}/status")).json()
    assert read["reported_at"] == again.json()["reported_at"]
    assert [s.version for s in states(await app.events(str(point_id)))] == [1], "nothing changed: not published"

    # The last published confirmation is older than the interval: the next one tells everybody.
    await app.pool.execute(
        "UPDATE point_status SET published_reported_at = published_reported_at - interval '1 hour' WHERE point_id = $1",
        point_id,
    )
    confirmed = (await app.report(point_id, {})).json()
    published = states(await app.events(str(point_id)))
    assert [s.version for s in published] == [1, confirmed["version"]]
    assert published[-1].reported_at.isoformat() == confirmed["reported_at"].replace("Z", "+00:00")
    assert (await app.report(point_id, {})).status_code == 201
    assert len(states(await app.events(str(point_id)))) == 2, "and then not again until the interval passes"


async def test_a_retried_report_is_applied_once_and_answered_the_same(app: StatusApp) -> None:
    point_id = await app.add_point()
    body = {"state": "open", "occupancy": 7, "served": 25}
    key = str(uuid.uuid4())
    first = await app.report(point_id, body, **{"Idempotency-Key": key})
    retry = await app.report(point_id, body, **{"Idempotency-Key": key})
    assert first.status_code == retry.status_code == 201
    assert "idempotent-replayed" not in first.headers and retry.headers["idempotent-replayed"] == "true"
    assert {k: v for k, v in retry.json().items() if k != "age_s"} == {
        k: v for k, v in first.json().items() if k != "age_s"
    }
    assert len(await app.history(point_id)) == 1
    assert await app.pool.fetchval("SELECT sum(served) FROM visitors_daily WHERE point_id = $1", point_id) == 25
    assert len(states(await app.events(str(point_id)))) == 1

    reused = await app.report(point_id, {**body, "occupancy": 8}, **{"Idempotency-Key": key})
    assert reused.status_code == 422
    assert reused.json()["errors"][0]["location"] == "header.Idempotency-Key"
    assert len(await app.history(point_id)) == 1

    # Another key is another report; the same key from another account is that account's own.
    assert (await app.report(point_id, body, **{"Idempotency-Key": str(uuid.uuid4())})).json()["version"] == 2
    coordinator = bearer("coordinator", katotth=["UA80"], sub="coordinator-1")
    other = await app.client.post(
        f"/v1/points/{point_id}/status", json=body, headers={**coordinator, "Idempotency-Key": key}
    )
    assert other.status_code == 201 and other.json()["version"] == 3


async def test_concurrent_retries_of_one_report_apply_it_once(app: StatusApp) -> None:
    point_id = await app.add_point()
    key = str(uuid.uuid4())
    responses = await asyncio.gather(
        *(app.report(point_id, {"state": "open", "served": 3}, **{"Idempotency-Key": key}) for _ in range(6))
    )
    assert {r.status_code for r in responses} == {201}
    assert {r.json()["version"] for r in responses} == {1}
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 5
    assert len(await app.history(point_id)) == 1
    assert await app.pool.fetchval("SELECT sum(served) FROM visitors_daily WHERE point_id = $1", point_id) == 3


async def test_visitors_add_up_per_day_nationally_and_per_area(app: StatusApp) -> None:
    kyiv = await app.add_point(katotth="UA80000000000093317")
    lviv = await app.add_point(katotth="UA46060250010015970")
    await app.report(kyiv, {"state": "open", "served": 100})
    await app.report(kyiv, {"served": 30})
    await app.report(lviv, {"state": "open", "served": 12})
    await app.report(lviv, {"served": 0})

    admin = await app.client.get("/v1/status/stats/visitors", headers=bearer("admin"), params={"by": "raion"})
    assert admin.status_code == 200, admin.text
    body = admin.json()
    today = body["until"]
    assert body["since"] == f"{date.fromisoformat(today).year}-01-01"
    areas = {a["katotth"]: a["served"] for a in body["areas"]}
    assert areas["UA8000"] >= 130 and areas["UA4606"] >= 12
    assert body["total"] == sum(d["served"] for d in body["days"]) == sum(areas.values())

    lviv_only = await app.client.get(
        "/v1/status/stats/visitors", headers=bearer("coordinator", katotth=["UA46"]), params={"since": today}
    )
    assert lviv_only.status_code == 200, lviv_only.text
    assert lviv_only.json()["total"] == lviv_only.json()["days"][0]["served"]
    assert [a["katotth"] for a in lviv_only.json()["areas"]] == ["UA46"]
    assert lviv_only.json()["total"] == sum(
        r["served"]
        for r in await app.pool.fetch(
            "SELECT served FROM visitors_daily WHERE katotth LIKE 'UA46%' AND day = $1", date.fromisoformat(today)
        )
    )


async def test_coordinators_list_low_fuel_and_full_points_in_their_scope(app: StatusApp) -> None:
    area = "UA5904"
    low = await app.add_point(katotth=f"{area}0010010000001")
    lower = await app.add_point(katotth=f"{area}0010010000002")
    full = await app.add_point(katotth=f"{area}0010010000003", capacity=10)
    elsewhere = await app.add_point(katotth="UA5906001001000004")
    await app.report(low, {"state": "open", "fuel_hours": 3})
    await app.report(lower, {"state": "open", "fuel_hours": 1})
    await app.report(full, {"state": "open", "occupancy": 10})
    await app.report(elsewhere, {"state": "open", "fuel_hours": 0.5, "occupancy": 100})
    coordinator = bearer("coordinator", katotth=[area])

    low_fuel = await app.client.get("/v1/status/lists/low_fuel", headers=coordinator)
    assert [i["point_id"] for i in low_fuel.json()["items"]] == [str(lower), str(low)], "least fuel first"
    item = low_fuel.json()["items"][0]
    assert item["code"].startswith("T-") and item["reported_by"] == "t" and item["fuel_hours"] == 1
    full_list = await app.client.get("/v1/status/lists/full", headers=coordinator)
    assert [i["point_id"] for i in full_list.json()["items"]] == [str(full)]

    counts = (await app.client.get("/v1/status/stats/states", headers=coordinator, params={"by": "raion"})).json()
    assert counts["areas"] == [{"katotth": area, "points": 3, "states": {**counts["total"]["states"]}, "low_fuel": 2}]
    assert counts["total"]["states"]["open"] == 2 and counts["total"]["states"]["full"] == 1


async def test_retired_points_disappear_and_hidden_ones_never_show(app: StatusApp) -> None:
    retired = await app.add_point()
    await app.report(retired, {"state": "open"})
    await app.add_point(point_id=retired, version=2, retired=True)
    hidden = await app.add_point(visibility="hidden")
    reported = await app.report(hidden, {"state": "open", "note": "секретно"})
    assert reported.status_code == 201, "its operator reports as usual"
    shown = await app.add_point()
    await app.report(shown, {"state": "closed"})

    async def hidden_from_public() -> bool:
        return (await app.client.get(f"/v1/points/{retired}/status")).status_code == 404

    from tests.integration.inprocess import eventually

    await eventually(hidden_from_public, "a retired point disappears from reads")
    assert (await app.client.get(f"/v1/points/{hidden}/status")).status_code == 404
    assert (await app.report(retired, {"state": "open"})).status_code == 409
    many = await app.client.get("/v1/status/points", params={"ids": [str(retired), str(hidden), str(shown)]})
    assert many.status_code == 200
    assert [i["point_id"] for i in many.json()["items"]] == [str(shown)]
    assert set(many.json()["missing"]) == {str(retired), str(hidden)}


async def test_concurrent_reports_on_one_point_all_apply_one_after_the_other(app: StatusApp) -> None:
    point_id = await app.add_point(capacity=1000)
    responses = await asyncio.gather(*(app.report(point_id, {"state": "open", "occupancy": n}) for n in range(1, 11)))
    assert [r.status_code for r in responses] == [201] * 10
    by_version = {r.json()["version"]: r.json()["occupancy"] for r in responses}
    assert sorted(by_version) == list(range(1, 11)), "each report made a version of its own"
    history = await app.history(point_id)
    assert {row["version"]: row["occupancy"] for row in history} == by_version
    await app.published()
    assert [s.version for s in states(await app.events(str(point_id)))] == list(range(1, 11))


def writer_of(app: StatusApp) -> ReportWriter:
    """A writer of the test's own over the app's connections, for batches the test makes."""
    return ReportWriter(app.pool, app.redis, app.settings)


async def test_a_bad_report_in_a_batch_fails_alone(app: StatusApp) -> None:
    points = [await app.add_point(services=("heat",)) for _ in range(3)]
    writer, admin = writer_of(app), Principal("admin-1", frozenset({Role.admin}))
    first = writer.record(point_id=points[0], report=StatusReport(state="open"), caller=admin, idempotency_key=None)
    # Queued while the first report's batch is written: the next batch takes them all.
    batch = [
        (points[1], StatusReport(state="open", services={"charging": True})),  # a service the point lacks
        (points[1], StatusReport(state="open", occupancy=3)),  # the same point: the batch after
        (uuid.uuid4(), StatusReport(state="open")),  # no such point
        (points[2], StatusReport(state="closed")),
    ]
    results = await asyncio.gather(
        first,
        *(writer.record(point_id=p, report=r, caller=admin, idempotency_key=None) for p, r in batch),
        return_exceptions=True,
    )
    assert isinstance(results[0], Recorded) and results[0].state.version == 1
    assert isinstance(results[1], service.InvalidReport)
    assert isinstance(results[2], Recorded) and (results[2].state.version, results[2].state.occupancy) == (1, 3)
    assert isinstance(results[3], service.PointNotFound)
    assert isinstance(results[4], Recorded) and results[4].state.state == "closed"
    assert [len(await app.history(p)) for p in points] == [1, 1, 1]


async def test_a_batch_the_database_refuses_is_written_again_one_report_at_a_time(app: StatusApp) -> None:
    points = [await app.add_point() for _ in range(3)]
    writer, admin = writer_of(app), Principal("admin-1", frozenset({Role.admin}))
    # PostgreSQL text cannot hold NUL: a note that passed validation by some other way fails the whole statement.
    refused = StatusReport.model_construct(state="open", note="a\x00b", _fields_set={"state", "note"})
    first = writer.record(point_id=points[0], report=StatusReport(state="open"), caller=admin, idempotency_key=None)
    results = await asyncio.gather(
        first,
        writer.record(point_id=points[1], report=refused, caller=admin, idempotency_key=None),
        writer.record(point_id=points[2], report=StatusReport(state="full"), caller=admin, idempotency_key=None),
        return_exceptions=True,
    )
    assert isinstance(results[0], Recorded)
    assert isinstance(results[1], asyncpg.PostgresError)
    assert isinstance(results[2], Recorded) and results[2].state.state == "full"
    assert [len(await app.history(p)) for p in points] == [1, 0, 1]


async def test_a_report_is_answered_the_same_before_the_router_and_by_the_route(app: StatusApp) -> None:
    point_id = await app.add_point()
    path, auth = f"/v1/points/{point_id}/status", bearer("operator", points=[str(point_id)])
    quick = await app.report(point_id, {"state": "open", "occupancy": 4})
    # Two Idempotency-Key headers are not the common case: the route takes it (and reads the first).
    key = str(uuid.uuid4())
    routed = await app.client.post(
        path,
        json={"occupancy": 5},
        headers=[*auth.items(), ("Idempotency-Key", key), ("Idempotency-Key", key)],
    )
    assert quick.status_code == routed.status_code == 201
    assert {k: v for k, v in quick.headers.items() if k not in ("date", "content-length")} == {
        k: v for k, v in routed.headers.items() if k not in ("date", "content-length")
    }
    assert quick.json().keys() == routed.json().keys()
    assert (quick.json()["version"], routed.json()["version"]) == (1, 2)
    metrics = (await app.client.get("/metrics")).text
    assert 'route="/v1/points/{point_id}/status",status_class="2xx"' in metrics.replace('method="POST",', "")
    # What the quick path leaves alone is answered by the route: a bad token, a bad key, a bad body.
    assert (await app.client.post(path, json={}, headers={"Authorization": "Bearer x"})).status_code == 401
    bad_key = await app.report(point_id, {}, **{"Idempotency-Key": "a b"})
    assert bad_key.status_code == 422 and bad_key.json()["errors"][0]["location"] == "header.Idempotency-Key"
    bad_body = await app.report(point_id, {"occupancy": "many"})
    assert bad_body.status_code == 422 and bad_body.json()["errors"][0]["location"] == "body.occupancy"
    assert (await app.report(uuid.uuid4(), {"state": "open"})).status_code == 404
    assert len(await app.history(point_id)) == 2
