"""`poi keys` issues, lists and revokes keys in the bucket every search replica watches."""

import re
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from poi_cli import stack
from poi_cli.main import app as poi
from tests.integration.routes.conftest import POLL_BOUND_S
from tests.integration.search.conftest import area

pytestmark = pytest.mark.integration
NEAR = area(17).near()


def answers_with(search: TestClient, key: str, status: int) -> httpx.Response:
    """Poll until the app answers a request with the key with that status (replicas learn of keys by watching)."""
    deadline = time.monotonic() + POLL_BOUND_S
    while (response := search.get("/v1/search/nearest", params=NEAR, headers={"X-API-Key": key})).status_code != status:
        assert time.monotonic() < deadline, f"still {response.status_code}, not {status}"
        time.sleep(0.05)
    return response


def test_poi_keys_issues_lists_and_revokes_a_key_the_replicas_honour(
    infra: stack.Infrastructure, search_namespace: str, search: TestClient
) -> None:
    runner, where = CliRunner(), ["--nats-url", infra.nats_url, "--namespace", search_namespace]
    issued = runner.invoke(poi, ["keys", "issue", "--name", "Дія", "--rate-limit", "500", "--issued-by", "ops", *where])
    assert issued.exit_code == 0, issued.output
    key = re.search(r"^poik_\w{12}_[\w-]{43}$", issued.output, re.M)
    assert key is not None, issued.output
    key_id = key.group().split("_")[1]
    used = answers_with(search, key.group(), 200)
    assert used.headers["ratelimit-policy"].startswith('"integrator";q=500;')

    listed = runner.invoke(poi, ["keys", "list", *where])
    assert listed.exit_code == 0 and key_id in listed.output and "Дія" in listed.output
    assert key.group() not in listed.output, "a key is shown once, when issued"

    revoked = runner.invoke(poi, ["keys", "revoke", key_id, "--revoked-by", "ops", *where])
    assert revoked.exit_code == 0, revoked.output
    answers_with(search, key.group(), 401)
    missing = runner.invoke(poi, ["keys", "revoke", "0123456789ab", *where])
    assert missing.exit_code == 1 and "no key 0123456789ab" in missing.output


def test_poi_keys_says_when_the_broker_does_not_answer() -> None:
    result = CliRunner().invoke(poi, ["keys", "list", "--nats-url", "nats://127.0.0.1:9", "--namespace", "poi"])
    assert result.exit_code == 1 and "cannot reach NATS" in result.output
