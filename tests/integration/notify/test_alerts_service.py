"""The notify app's consumers and loops: registry and status events from JetStream become one queued SMS."""

import gc
import secrets
from datetime import time

import asyncpg
import nats
import pytest

from poi_cli import stack
from poi_notify.app import GC_THRESHOLDS, create_app
from poi_notify.settings import NotifySettings
from poi_shared import jetstream
from poi_shared.contracts import AREA_ACTIVATED, POINT_REGISTERED, STATUS_CHANGED, STREAMS, AreaActivation
from poi_shared.envelope import build_message
from tests.integration.inprocess import eventually, serving
from tests.integration.notify.conftest import add_phone, messages, point_state, status_state, subscribe_area

pytestmark = pytest.mark.integration


async def test_events_from_the_streams_become_one_sms(
    infra: stack.Infrastructure, namespace: str, notify_database_url: str, pool: asyncpg.Pool
) -> None:
    url = notify_database_url
    ns = f"{namespace}n{secrets.token_hex(2)}"
    settings = NotifySettings(
        database_url=url,
        nats_url=infra.nats_url,
        namespace=ns,
        phone_key="test-phone-key",
        alert_gather_s=0,
        alert_plan_interval_s=0.2,
        alert_flush_interval_s=0.2,
        alert_quiet_start=time(0, 0),
        alert_quiet_end=time(0, 0),
    )
    nc = await nats.connect(infra.nats_url)
    js = nc.jetstream()
    await jetstream.ensure_streams(js, ns)
    thresholds = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # Python's default
    try:
        point = point_state()
        phone = await add_phone(pool)
        await subscribe_area(pool, phone, point.lat, point.lon, 1000)
        async with serving(create_app(settings)):
            # The process collects garbage as a flush batch needs (app.collect_garbage_less_often).
            assert gc.get_threshold() == GC_THRESHOLDS
            for event_type, key, data in (
                (POINT_REGISTERED, str(point.id), point),
                (STATUS_CHANGED, str(point.id), status_state(point.id, 1, "open", cause="activation")),
                # An area's own event beside its points' events: nothing to do, and no dead letter.
                (
                    AREA_ACTIVATED,
                    "area-UA80",
                    AreaActivation.model_validate(
                        {
                            "id": "00000000-0000-4000-8000-000000000001",
                            "action": "activate",
                            "katotth_prefix": "UA80",
                            "state": "open",
                            "points_changed": 1,
                            "requested_by": "c",
                            "requested_at": point.updated_at,
                        }
                    ),
                ),
            ):
                message = build_message(namespace=ns, event_type=event_type, key=key, data=data, source="/tests")
                await js.publish(message.subject, message.body, headers=message.headers)

            async def queued() -> list[asyncpg.Record]:
                return await messages(pool, phone)

            [sms] = await eventually(queued, "the alert is queued")
            assert sms["body"].startswith("Відкрито поруч: Ліцей №5")
            assert await pool.fetchval("SELECT count(*) FROM inbox WHERE consumer = 'notify-alerts'") == 1
    finally:
        gc.set_threshold(*thresholds)
        for spec in STREAMS:
            try:
                await js.delete_stream(spec.stream_name(ns))
            except nats.js.errors.NotFoundError:
                pass
        await nc.close()
