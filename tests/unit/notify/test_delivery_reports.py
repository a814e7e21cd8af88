"""Delivery reports taken in memory: merged per message by the database's rule, bounded while it is down."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from poi_notify.sms import reports
from poi_shared.errors import DependencyUnavailable

AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def report(id: uuid.UUID, dlr_type: int, second: int) -> reports.Report:
    return reports.Report(id, dlr_type, AT + timedelta(seconds=second))


def test_a_late_acceptance_never_hides_delivery_and_the_last_final_report_wins() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    merged = reports.merge(
        [report(a, 8, 0), report(a, 1, 1), report(a, 8, 2), report(b, 8, 0), report(c, 1, 0), report(c, 2, 1)]
    )
    assert merged[a] == reports.Settled(1, "delivered", AT + timedelta(seconds=2))
    assert merged[b] == reports.Settled(8, None, AT)
    assert merged[c] == reports.Settled(2, "failed", AT + timedelta(seconds=1))
    assert list(merged) == [a, b, c]


def test_the_buffer_refuses_reports_beyond_its_bound_as_a_dependency_outage() -> None:
    buffer = reports.ReportBuffer(limit=2)
    reports.take(buffer, id=uuid.uuid4(), dlr_type=8)
    reports.take(buffer, id=uuid.uuid4(), dlr_type=1)
    with pytest.raises(DependencyUnavailable):
        reports.take(buffer, id=uuid.uuid4(), dlr_type=1)
    assert len(buffer.pending) == 2


def test_a_report_that_settles_nothing_waits_for_the_final_one_then_goes_alone() -> None:
    delivered, waiting, old = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    taken = [report(old, 8, 0), report(delivered, 8, 9), report(waiting, 4, 9), report(delivered, 1, 10)]
    write, hold = reports.due(taken, now=AT + timedelta(seconds=10), hold_s=5)
    assert write == [taken[0], taken[1], taken[3]], "the old report alone, and the delivered message's pair at once"
    assert hold == [taken[2]]
    assert reports.due(taken, now=AT + timedelta(seconds=10), hold_s=0) == (taken, []), "stopping: all of them"
