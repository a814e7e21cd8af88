"""schemathesis against each service's OpenAPI document, in process: no 5xx, nothing the document does not promise.

A fixed seed (derandomized) and a small number of examples per operation keep it fast and repeatable. Requests
carry an admin token, so writes are exercised past authorization; the authorization matrix is tests/security's.
"""

from collections.abc import Callable
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
from schemathesis.generation import GenerationMode

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


def send(client: TestClient, case: schemathesis.Case, bearer: Bearer, role: str = "admin") -> Any:
    """Send the case through the in-process app with a token of the role; the app's answer."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=bearer(role))
    kwargs.pop("allow_redirects", None)
    kwargs.pop("follow_redirects", None)
    return client.request(**kwargs)


def call(client: TestClient, case: schemathesis.Case, bearer: Bearer) -> None:
    """Send the case and check the answer against the document."""
    case.validate_response(send(client, case, bearer), checks=CHECKS)


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
# parameters) and chains them, so an id an answer gave is then used in a path, e.g. a registered point read by it.
# More scenarios than the stateless phases: a chain only starts where a scenario's first steps created something.
STATEFUL = settings(
    max_examples=25,
    stateful_step_count=6,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def run_stateful(
    schema: Any,
    client: TestClient,
    bearer: Bearer,
    *,
    bodies: dict[str, dict[str, Any]] | None = None,
    roles: dict[str, str] | None = None,
    reset: Callable[[], None] | None = None,
) -> None:
    """Run schemathesis's state machine for the schema against the in-process app, checking every answer.

    bodies: by "METHOD /path", a valid body for the positive cases of an operation whose resources generated data
    cannot create (a real mobile number); roles: by path prefix, the role to call with (else admin); reset: run before
    each scenario and after the last, so that what a scenario draws from a list answer does not depend on what earlier
    ones left (Hypothesis replays scenarios and refuses generation that changes between runs), and the tests after
    these find the app as they would have.
    """
    machine = schema.as_state_machine()
    if not schema.statistic.transitions.total:
        pytest.skip("schemathesis found no operation whose answer another operation takes: no stateful phase")
    found_by_id: list[str] = []  # operations with path parameters that answered 2xx: an id from an earlier answer

    class Workflow(machine):  # type: ignore[misc,valid-type]
        def setup(self) -> None:
            if reset is not None:
                reset()

        def call(self, case: schemathesis.Case, **kwargs: Any) -> Response:
            body = (bodies or {}).get(f"{case.method} {case.path}")
            if body is not None and case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE:
                case.body = body
            role = next((r for prefix, r in (roles or {}).items() if case.path.startswith(prefix)), "admin")
            response = send(client, case, bearer, role)
            if case.path_parameters and response.status_code < 300:
                found_by_id.append(f"{case.method} {case.path}")
            return Response.from_any(response)

        def validate_response(self, response: Response, case: schemathesis.Case, *args: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    try:
        Workflow.run(settings=STATEFUL)
    finally:
        if reset is not None:
            reset()
    assert found_by_id, "no step reached an operation with an id taken from an earlier answer"


def test_registry_statefully(registry_schema: Any, registry_client: TestClient, bearer: Bearer) -> None:
    admin = bearer("admin")
    policies = {p["oblast"]: p["visibility"] for p in registry_client.get("/v1/oblast-policies", headers=admin).json()}

    def restore_policies() -> None:
        # A scenario may set an oblast's policy (listed oblasts feed the PUT), which changes its points for others.
        for policy in registry_client.get("/v1/oblast-policies", headers=admin).json():
            if policy["visibility"] != policies[policy["oblast"]]:
                body = {"visibility": policies[policy["oblast"]]}
                registry_client.put(f"/v1/oblast-policies/{policy['oblast']}", json=body, headers=admin)

    run_stateful(registry_schema, registry_client, bearer, reset=restore_policies)


def test_status_statefully(status_schema: Any, status_client: TestClient, bearer: Bearer) -> None:
    run_stateful(status_schema, status_client, bearer)


def test_search_statefully(search_schema: Any, search_client: TestClient, bearer: Bearer) -> None:
    run_stateful(search_schema, search_client, bearer)


def test_notify_statefully(notify_schema: Any, notify_client: TestClient, bearer: Bearer) -> None:
    def forget_contacts() -> None:
        admin = bearer("admin")
        while items := notify_client.get("/v1/contacts", headers=admin).json()["items"]:
            for contact in items:
                notify_client.delete(f"/v1/contacts/{contact['id']}", headers=admin)

    run_stateful(
        notify_schema,
        notify_client,
        bearer,
        bodies={"POST /v1/contacts": {"phone": "+380671234567", "katotth_prefix": "UA80", "language": "uk"}},
        roles={"/v1/webhooks": "integrator"},
        reset=forget_contacts,
    )
