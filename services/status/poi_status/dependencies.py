"""What routes take from the running app, as Annotated aliases that keep route signatures short.

They are coroutines: FastAPI runs a plain function dependency in its thread pool, a hop each.
"""

from typing import Annotated

import asyncpg
import redis.asyncio as redis
from fastapi import Depends, Request
from nats.js import JetStreamContext

from poi_status.points.service import Directory
from poi_status.reports.service import ReportWriter
from poi_status.settings import StatusSettings


async def get_pool(request: Request) -> asyncpg.Pool:
    """The status database pool."""
    return request.app.state.pool


async def get_redis(request: Request) -> redis.Redis:
    """The Redis client holding current status."""
    return request.app.state.redis


async def get_settings(request: Request) -> StatusSettings:
    """The app's settings."""
    return request.app.state.settings


async def get_directory(request: Request) -> Directory:
    """This replica's directory of known points."""
    return request.app.state.directory


async def get_report_writer(request: Request) -> ReportWriter:
    """The writer that batches this replica's reports."""
    return request.app.state.report_writer


async def get_jetstream(request: Request) -> JetStreamContext:
    """The JetStream context (the live feed reads the status stream)."""
    return request.app.state.jetstream


Pool = Annotated[asyncpg.Pool, Depends(get_pool)]
Redis = Annotated[redis.Redis, Depends(get_redis)]
Settings = Annotated[StatusSettings, Depends(get_settings)]
Known = Annotated[Directory, Depends(get_directory)]
Reports = Annotated[ReportWriter, Depends(get_report_writer)]
JetStream = Annotated[JetStreamContext, Depends(get_jetstream)]
