"""Fixtures for the shared library's integration tests."""

import secrets
from collections.abc import AsyncIterator

import nats
import pytest_asyncio

from poi_cli import stack
from poi_shared import jetstream
from poi_shared.contracts import STREAMS


@pytest_asyncio.fixture
async def own_namespace(infra: stack.Infrastructure) -> AsyncIterator[str]:
    """A namespace whose streams hold only this test's messages; removed afterwards."""
    ns = f"o{secrets.token_hex(4)}"
    conn = await nats.connect(infra.nats_url)
    await jetstream.ensure_streams(conn.jetstream(), ns)
    yield ns
    for spec in STREAMS:
        try:
            await conn.jetstream().delete_stream(spec.stream_name(ns))
        except nats.js.errors.NotFoundError:
            pass
    await conn.close()
