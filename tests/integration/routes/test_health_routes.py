"""Every service's health routes and served OpenAPI document, with its lifespan on the real servers."""

import pytest
from fastapi.testclient import TestClient

from tests.integration.routes.conftest import eventually

pytestmark = pytest.mark.integration
SERVICES = ["registry_client", "status_client", "search_client", "notify_client"]


@pytest.mark.parametrize("client_fixture", SERVICES)
def test_alive_and_ready(request: pytest.FixtureRequest, client_fixture: str) -> None:
    client: TestClient = request.getfixturevalue(client_fixture)
    assert client.get("/livez").json() == {"status": "alive"}
    ready = eventually(lambda: (r := client.get("/readyz")).status_code == 200 and r, "the service is ready")
    assert ready.json()["status"] == "ready"


@pytest.mark.parametrize("client_fixture", SERVICES)
def test_served_openapi_document_is_the_completed_one(request: pytest.FixtureRequest, client_fixture: str) -> None:
    client: TestClient = request.getfixturevalue(client_fixture)
    document = client.get("/openapi.json").json()
    assert document["info"]["license"]["identifier"] == "EUPL-1.2"
    assert "HTTPValidationError" not in str(document) and "Problem" in document["components"]["schemas"]
