"""What `make run` loads into an empty register: the national dataset of 10,676 points, through the import."""

import asyncpg
import pytest

from poi_cli import stack
from poi_cli.demo import NATIONAL_POINTS
from poi_cli.seed import seed_points
from poi_registry.app import MIGRATIONS
from poi_shared import db
from tests.conftest import drop_namespace

pytestmark = pytest.mark.integration


async def test_an_empty_register_gets_the_national_dataset_once(infra: stack.Infrastructure, namespace: str) -> None:
    ns = f"{namespace}n"
    name = f"{ns}_registry"
    await db.ensure_database(infra.database_url, name)
    url = db.database_url(infra.database_url, name)
    await db.migrate(url, MIGRATIONS)
    try:
        # As `poi run` calls it (its --demo-points defaults to NATIONAL_POINTS).
        report = await seed_points(url, namespace=ns, count=NATIONAL_POINTS, only_if_empty=True)
        assert report is not None and (report.rows, report.created, report.failed) == (10_676, 10_676, 0)
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM points") == 10_676
            assert await conn.fetchval("SELECT count(DISTINCT code) FROM points") == 10_676
            # Every point reaches the other services as an event (the outbox holds them until the relay runs).
            assert await conn.fetchval("SELECT count(*) FROM outbox") >= 10_676
        finally:
            await conn.close()
        # A second `make run` keeps the register as it is.
        assert await seed_points(url, namespace=ns, count=NATIONAL_POINTS, only_if_empty=True) is None
    finally:
        await drop_namespace(infra, ns)
