"""The route tests' in-process apps, in a namespace of the security tests' own."""

import asyncio
from collections.abc import Iterator

import pytest

from poi_cli import stack
from tests.conftest import drop_namespace
from tests.integration.routes.conftest import (  # noqa: F401  (fixtures used by the tests here)
    bearer,
    database_urls,
    notify_client,
    registry_client,
    search_client,
    status_client,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def routes_namespace(infra: stack.Infrastructure, namespace: str) -> Iterator[str]:
    """Not the route tests' namespace, so both sets of apps may run in one session; removed at the end."""
    ns = f"{namespace}x"
    yield ns
    asyncio.run(drop_namespace(infra, ns))
