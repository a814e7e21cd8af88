"""Loading the demo dataset through the registry's own service functions (so every point gets its event)."""

import asyncpg
from rich.progress import Progress

from poi_cli.demo import demo_points
from poi_registry import data as registry_data
from poi_registry.points.models import PointCreate
from poi_registry.points.service import register_point


async def seed_points(registry_database_url: str, *, namespace: str, count: int, only_if_empty: bool) -> int:
    """Register `count` demo points; with only_if_empty, do nothing when the register holds points."""
    pool = await asyncpg.create_pool(registry_database_url, min_size=1, max_size=4)
    assert pool is not None
    try:
        if only_if_empty and await registry_data.count_points(pool) > 0:
            return 0
        points = [PointCreate.model_validate(p) for p in demo_points(count)]
        with Progress(transient=True) as progress:
            task = progress.add_task("registering demo points", total=len(points))
            for payload in points:
                await register_point(pool, payload=payload, namespace=namespace)
                progress.advance(task)
        return len(points)
    finally:
        await pool.close()
