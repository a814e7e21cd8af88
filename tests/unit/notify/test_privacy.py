"""Access log lines of Kannel's callbacks lose their query string (the number and the gateway token)."""

import logging

from poi_notify.privacy import PrivateQueryFilter


def access_record(path: str) -> logging.LogRecord:
    args = ("10.0.0.7:5123", "GET", path, "1.1", 200)
    return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None)


def test_the_callbacks_query_strings_are_dropped() -> None:
    record = access_record("/v1/sms/inbound?from=%2B380671234567&text=STOP&token=t0k3n")
    assert PrivateQueryFilter().filter(record)
    line = record.getMessage()
    assert "380671234567" not in line and "t0k3n" not in line and "/v1/sms/inbound?…" in line


def test_other_paths_are_logged_as_they_are() -> None:
    record = access_record("/v1/subscriptions/7c0e2f4e-8a4b-4d4e-9a55-2a3f7d7a1c11?x=1")
    PrivateQueryFilter().filter(record)
    assert "?x=1" in record.getMessage()
