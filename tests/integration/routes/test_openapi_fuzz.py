"""schemathesis against each service's OpenAPI document, in process: no 5xx, nothing the document does not promise.

A fixed seed (derandomized) and a small number of examples per operation keep it fast and repeatable. Requests
carry an admin token, so writes are exercised past authorization; the authorization matrix is tests/security's.
"""

from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.routes.conftest import Bearer

pytestmark = pytest.mark.integration
EXAMPLES = 5
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
SKIPPED = {"/v1/status/feed"}  # a live event stream never ends; tests/integration/status/test_feed.py covers it
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def load(client: TestClient) -> Any:
    return schemathesis.openapi.from_dict(client.app.openapi())  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def registry_schema(registry_client: TestClient) -> Any:
    return load(registry_client)


@pytest.fixture(scope="session")
def status_schema(status_client: TestClient) -> Any:
    return load(status_client)


@pytest.fixture(scope="session")
def search_schema(search_client: TestClient) -> Any:
    return load(search_client)


@pytest.fixture(scope="session")
def notify_schema(notify_client: TestClient) -> Any:
    return load(notify_client)


def call(client: TestClient, case: schemathesis.Case, bearer: Bearer) -> None:
    """Send the case through the in-process app and check the answer against the document."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=bearer("admin"))
    kwargs.pop("allow_redirects", None)
    kwargs.pop("follow_redirects", None)
    response = client.request(**kwargs)
    case.validate_response(response, checks=CHECKS)


registry = schemathesis.pytest.from_fixture("registry_schema")
status = schemathesis.pytest.from_fixture("status_schema").exclude(path=list(SKIPPED))
search = schemathesis.pytest.from_fixture("search_schema")
notify = schemathesis.pytest.from_fixture("notify_schema")


@registry.parametrize()
@FUZZ
def test_registry_conforms_to_its_openapi(case: schemathesis.Case, registry_client: TestClient, bearer: Bearer) -> None:
    call(registry_client, case, bearer)


@status.parametrize()
@FUZZ
def test_status_conforms_to_its_openapi(case: schemathesis.Case, status_client: TestClient, bearer: Bearer) -> None:
    call(status_client, case, bearer)


@search.parametrize()
@FUZZ
def test_search_conforms_to_its_openapi(case: schemathesis.Case, search_client: TestClient, bearer: Bearer) -> None:
    call(search_client, case, bearer)


@notify.parametrize()
@FUZZ
def test_notify_conforms_to_its_openapi(case: schemathesis.Case, notify_client: TestClient, bearer: Bearer) -> None:
    call(notify_client, case, bearer)
