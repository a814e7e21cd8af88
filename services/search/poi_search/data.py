"""All of search's own storage: integrator keys in a JetStream key-value bucket that every replica watches.

Search keeps no database. Keys must survive restarts and be the same on every replica, so they live in the broker
the replicas already share: one entry per key id, holding the key's hash (never the key), replicated by JetStream.
"""

import asyncio
import logging
from collections.abc import Callable

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

log = logging.getLogger(__name__)
WATCH_POLL_S = 1.0


def keys_bucket(namespace: str) -> str:
    """The key-value bucket of a namespace's integrator keys (its stream is KV_<bucket>)."""
    return f"{namespace}_integrator_keys"


async def open_keys(js: JetStreamContext, namespace: str) -> KeyValue:
    """The keys bucket, made on first use (safe from every replica and from `poi keys`)."""
    bucket = keys_bucket(namespace)
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        return await js.create_key_value(
            KeyValueConfig(
                bucket=bucket,
                description="Integrator API keys of the search service: hashes only.",
                history=5,
                storage=StorageType.FILE,
            )
        )


async def put_key(kv: KeyValue, key_id: str, value: bytes) -> None:
    """Store a key's record."""
    await kv.put(key_id, value)


async def get_key(kv: KeyValue, key_id: str) -> bytes | None:
    """A key's record, None if there is none."""
    try:
        entry = await kv.get(key_id)
    except KeyNotFoundError:
        return None
    return entry.value


async def list_keys(kv: KeyValue) -> list[bytes]:
    """Every key's record."""
    found: list[bytes] = []
    watcher = await kv.watchall(ignore_deletes=True)
    try:
        while (entry := await watcher.updates(timeout=5.0)) is not None:
            if entry.value:
                found.append(entry.value)
    finally:
        await watcher.stop()
    return found


async def watch_keys(
    kv: KeyValue, *, on_value: Callable[[str, bytes | None], None], on_loaded: Callable[[], None], stop: asyncio.Event
) -> None:
    """Feed every key's record, then every change, to on_value (None: deleted); on_loaded once all are read."""
    watcher = await kv.watchall()
    try:
        while not stop.is_set():
            try:
                entry = await watcher.updates(timeout=WATCH_POLL_S)
            except nats.errors.TimeoutError:
                continue
            if entry is None:  # everything stored so far has been read
                on_loaded()
                continue
            deleted = entry.operation in (KV_DEL, KV_PURGE)
            on_value(entry.key, None if deleted else entry.value)
    finally:
        await watcher.stop()
