"""Reliability settings in code: stream bounds, consumer config, backoff, which errors mean a dependency is down."""

import asyncpg
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from nats.js import api

from poi_shared.app import build_app
from poi_shared.contracts import DEAD_LETTERS, POINTS, REPLAY
from poi_shared.errors import DEPENDENCY_ERRORS
from poi_shared.jetstream import RetryPolicy, consumer_config, stream_config


def test_dead_letters_are_bounded_by_age_and_size_dropping_the_oldest() -> None:
    config = stream_config(DEAD_LETTERS, "poi")
    assert config.max_age == 30 * 24 * 3600
    assert config.max_bytes == 1024**3
    assert config.discard == api.DiscardPolicy.OLD
    assert config.retention == api.RetentionPolicy.LIMITS


def test_replays_are_a_bounded_work_queue() -> None:
    config = stream_config(REPLAY, "poi")
    assert config.retention == api.RetentionPolicy.WORK_QUEUE
    assert config.subjects == ["poi.replay.*"]
    assert config.max_age and config.max_bytes and config.max_bytes > 0


def test_event_streams_keep_their_history_unbounded_by_age() -> None:
    config = stream_config(POINTS, "poi")
    assert not config.max_age
    assert config.max_bytes == -1
    assert config.max_msgs_per_subject == 64


def test_the_server_never_gives_up_on_a_message_the_runner_decides() -> None:
    config = consumer_config(durable="notify-status", filter_subject="poi.status.*", ack_wait_s=30, max_ack_pending=256)
    assert config.max_deliver == -1
    assert config.durable_name == config.name == "notify-status"
    assert config.ack_policy == api.AckPolicy.EXPLICIT


def test_backoff_grows_exponentially_up_to_its_cap() -> None:
    retry = RetryPolicy(initial_s=0.5, max_s=30.0, poison_budget=5)
    assert [retry.delay(n) for n in range(1, 9)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert retry.delay(10_000) == 30.0


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
    ],
)
def test_a_database_going_away_is_a_dependency_error_answered_with_503(error: Exception) -> None:
    assert isinstance(error, DEPENDENCY_ERRORS)
    router = APIRouter()

    @router.get("/fails")
    async def fails() -> None:
        raise error

    app = build_app(service="t", title="t", description="d", lifespan=None, routers=[router])
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/fails")
    assert response.status_code == 503
    assert response.headers["retry-after"]


@pytest.mark.parametrize("error", [RuntimeError("bug"), asyncpg.exceptions.UniqueViolationError("duplicate key")])
def test_bugs_and_refusals_are_not_dependency_errors(error: Exception) -> None:
    assert not isinstance(error, DEPENDENCY_ERRORS)


def test_streams_take_the_configured_number_of_replicas() -> None:
    assert stream_config(DEAD_LETTERS, "poi").num_replicas == 1
    assert stream_config(DEAD_LETTERS, "poi", replicas=3).num_replicas == 3
