"""The ids the alert flush gives its messages: UUIDv7, stamped with the time they were made."""

import time
import uuid

from poi_notify.sms import service as sms


def test_ids_are_distinct_version_7_uuids_stamped_with_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    made = sms.time_ordered_ids(1000)
    after = time.time_ns() // 1_000_000
    ids = [uuid.UUID(bytes=made[at : at + 16]) for at in range(0, len(made), 16)]
    assert len(ids) == len(set(ids)) == 1000
    assert {(i.version, i.variant) for i in ids} == {(7, uuid.RFC_4122)}
    assert all(before <= i.int >> 80 <= after for i in ids)


def test_no_ids_for_no_messages() -> None:
    assert sms.time_ordered_ids(0) == b""
