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
from schemathesis.core.transport import Response

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


# The stateful phase: schemathesis finds which operations produce what others take (ids in answers, path
# parameters) and chains them, so a registered point is then read, changed and retired by its real id.
STATEFUL = settings(
    max_examples=EXAMPLES,
    stateful_step_count=6,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def run_stateful(schema: Any, client: TestClient, bearer: Bearer) -> None:
    """Run schemathesis's state machine for the schema against the in-process app, checking every answer."""
    machine = schema.as_state_machine()
    if not schema.statistic.transitions.total:
        pytest.skip("schemathesis found no operation whose answer another operation takes: no stateful phase")

    class Workflow(machine):  # type: ignore[misc,valid-type]
        def call(self, case: schemathesis.Case, **kwargs: Any) -> Response:
            kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=bearer("admin"))
            kwargs.pop("allow_redirects", None)
            kwargs.pop("follow_redirects", None)
            return Response.from_any(client.request(**kwargs))

        def validate_response(self, response: Response, case: schemathesis.Case, *args: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    Workflow.run(settings=STATEFUL)


def test_registry_statefully(registry_schema: Any, registry_client: TestClient, bearer: Bearer) -> None:
    run_stateful(registry_schema, registry_client, bearer)


def test_status_statefully(status_schema: Any, status_client: TestClient, bearer: Bearer) -> None:
    run_stateful(status_schema, status_client, bearer)


def test_search_statefully(search_schema: Any, search_client: TestClient, bearer: Bearer) -> None:
    run_stateful(search_schema, search_client, bearer)


def test_notify_statefully(notify_schema: Any, notify_client: TestClient, bearer: Bearer) -> None:
    run_stateful(notify_schema, notify_client, bearer)
