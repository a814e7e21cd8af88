"""Merging a report into the current status: partial reports, derived full and low fuel, what is published; and
what the public sees of a status."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from poi_shared.contracts import OpenState, StatusState
from poi_status.reports.models import PublicStatus, StatusReport
from poi_status.reports.service import InvalidReport, Merged, merge_report, public_json

NOW = datetime(2026, 1, 10, 18, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(minutes=30)
THRESHOLD_H = 6.0
CONFIRM_S = 180.0


def current(**changes: Any) -> dict[str, Any]:
    """A point with capacity 100 offering heat and charging, open since EARLIER, as the locked row holds it."""
    row: dict[str, Any] = {
        "version": 3,
        "state": "open",
        "previous_state": "closed",
        "cause": "report",
        "services": json.dumps({"heat": {"available": True, "confirmed_at": EARLIER.isoformat()}}),
        "power": "generator",
        "fuel_hours": 12.0,
        "low_fuel": False,
        "internet": "starlink",
        "occupancy": 20,
        "capacity": 100,
        "note": "вхід з двору",
        "reported_by": "op-1",
        "reported_at": EARLIER,
        "changed_at": EARLIER,
        "published_reported_at": EARLIER,
        "offered": ["charging", "heat"],
        "point_capacity": 100,
    }
    row.update(changes)
    return row


def merge(report: dict[str, Any], **changes: Any) -> Merged:
    return merge_report(
        current(**changes),
        StatusReport.model_validate(report),
        caller="op-2",
        now=NOW,
        low_fuel_hours=THRESHOLD_H,
        confirm_event_interval_s=CONFIRM_S,
    )


def test_a_partial_report_keeps_everything_it_does_not_mention() -> None:
    merged = merge({"occupancy": 30})
    values = merged.values
    assert values["state"] == "open" and values["occupancy"] == 30
    assert (values["power"], values["fuel_hours"], values["internet"], values["note"]) == (
        "generator",
        12.0,
        "starlink",
        "вхід з двору",
    )
    assert json.loads(values["services"])["heat"] == {"available": True, "confirmed_at": EARLIER.isoformat()}
    assert values["previous_state"] == "open" and values["reported_by"] == "op-2" and values["reported_at"] == NOW
    assert merged.publish and values["changed_at"] == NOW


def test_null_clears_and_an_empty_note_clears_too() -> None:
    values = merge({"power": None, "fuel_hours": None, "occupancy": None, "note": ""}).values
    assert (values["power"], values["fuel_hours"], values["occupancy"], values["note"]) == (None, None, None, None)


def test_reported_services_are_confirmed_now_and_others_keep_their_time() -> None:
    services = json.loads(merge({"services": {"charging": False}}).values["services"])
    assert services == {
        "heat": {"available": True, "confirmed_at": EARLIER.isoformat()},
        "charging": {"available": False, "confirmed_at": NOW.isoformat()},
    }


def test_a_service_the_point_no_longer_offers_is_dropped() -> None:
    services = json.loads(merge({}, offered=["charging"]).values["services"])
    assert services == {}


def test_a_service_the_point_does_not_offer_is_refused_by_name() -> None:
    with pytest.raises(InvalidReport) as refused:
        merge({"services": {"water": True}})
    assert refused.value.location == ("body", "services", "water")
    assert "charging, heat" in refused.value.message


def test_occupancy_far_beyond_capacity_is_refused() -> None:
    with pytest.raises(InvalidReport) as refused:
        merge({"occupancy": 201})
    assert refused.value.location == ("body", "occupancy")
    assert merge({"occupancy": 200}).values["state"] == "full"


def test_open_becomes_full_when_occupancy_reaches_capacity_and_open_again_when_places_free_up() -> None:
    assert merge({"occupancy": 100}).values["state"] == "full"
    assert merge({"state": "open", "occupancy": 130}).values["state"] == "full"
    assert merge({"occupancy": 99}, state="full", occupancy=100).values["state"] == "open"
    # An operator who says full means it, whatever the count; closed and standby are not about places.
    assert merge({"state": "full", "occupancy": 10}).values["state"] == "full"
    assert merge({"occupancy": 10}, state="full", occupancy=None).values["state"] == "open"
    assert merge({"note": "ще є місця?"}, state="full", occupancy=100).values["state"] == "full"
    assert merge({"state": "closed", "occupancy": 150}).values["state"] == "closed"
    assert merge({"occupancy": 500}, point_capacity=None).values["state"] == "open"


def test_low_fuel_is_flagged_under_the_threshold_and_begins_only_when_crossing() -> None:
    dropping = merge({"fuel_hours": 5.5})
    assert dropping.values["low_fuel"] and dropping.low_fuel_began
    still_low = merge({"fuel_hours": 4.0}, fuel_hours=5.5, low_fuel=True)
    assert still_low.values["low_fuel"] and not still_low.low_fuel_began
    refuelled = merge({"fuel_hours": 20.0}, fuel_hours=4.0, low_fuel=True)
    assert not refuelled.values["low_fuel"] and not refuelled.low_fuel_began
    assert not merge({"fuel_hours": THRESHOLD_H}).values["low_fuel"]
    assert not merge({"fuel_hours": None}, fuel_hours=1.0, low_fuel=True).values["low_fuel"]


def test_a_confirmation_is_published_only_when_the_last_published_one_is_old_enough() -> None:
    recent = merge({}, published_reported_at=NOW - timedelta(seconds=CONFIRM_S - 1))
    assert not recent.publish
    assert recent.values["changed_at"] == EARLIER, "nothing changed, so the version's change time stays"
    assert recent.values["reported_at"] == NOW, "but the status is confirmed now"
    assert merge({}, published_reported_at=NOW - timedelta(seconds=CONFIRM_S)).publish
    same_again = {"state": "open", "occupancy": 20, "services": {"heat": True}, "power": "generator"}
    assert not merge(same_again, published_reported_at=NOW).publish


@pytest.mark.parametrize(
    "report",
    [
        {"state": "closed"},
        {"services": {"heat": False}},
        {"power": "grid"},
        {"fuel_hours": 11.5},
        {"internet": "none"},
        {"occupancy": 21},
        {"note": "інша нотатка"},
    ],
)
def test_any_change_a_reader_sees_is_published_at_once(report: dict[str, Any]) -> None:
    merged = merge(report, published_reported_at=NOW)
    assert merged.publish and merged.values["changed_at"] == NOW


def test_a_capacity_change_from_the_registry_is_a_change() -> None:
    merged = merge({}, point_capacity=150, published_reported_at=NOW)
    assert merged.publish and merged.values["capacity"] == 150


def test_the_first_status_needs_a_state_and_has_no_previous_one() -> None:
    never = {"version": 0, "state": "unknown", "previous_state": None, "services": "{}", "published_reported_at": None}
    with pytest.raises(InvalidReport) as refused:
        merge({"occupancy": 5}, **never)
    assert refused.value.location == ("body", "state")
    first = merge({"state": "standby"}, **never)
    assert first.publish and first.values["previous_state"] is None and first.values["state"] == "standby"


def test_a_stale_point_needs_a_state_again() -> None:
    with pytest.raises(InvalidReport):
        merge({}, state="unknown", cause="stale")
    assert merge({"state": "open"}, state="unknown", cause="stale").values["state"] == "open"


def test_the_public_view_is_the_status_without_who_reported_and_with_its_age() -> None:
    point_id = uuid.uuid4()
    state = StatusState(
        point_id=point_id,
        version=4,
        state=OpenState.open,
        services={"heat": {"available": True, "confirmed_at": EARLIER}},
        occupancy=5,
        note='лапки " і \\ в нотатці',
        reported_at=EARLIER,
        changed_at=EARLIER,
        reported_by="op-secret",
    )
    document = public_json(point_id, state, now=NOW)
    view = PublicStatus.model_validate_json(document)
    assert view.age_s == 30 * 60 and view.note == state.note and view.services["heat"].available
    assert b"op-secret" not in document and b"reported_by" not in document
    assert set(json.loads(document)) == set(PublicStatus.model_fields)
    never = PublicStatus.model_validate_json(public_json(point_id, None, now=NOW))
    assert (never.version, never.state, never.reported_at, never.age_s) == (0, "unknown", None, None)
