"""`poi token` issues only tokens the services accept."""

import uuid

import jwt
import pytest
from typer.testing import CliRunner

from poi_cli.main import app

SECRET = "cli-test-secret-that-is-long-enough-0123"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("POI_AUTH_SECRET", SECRET)
    monkeypatch.setenv("COLUMNS", "200")  # keep rich from wrapping the error message
    return CliRunner()


def claims(output: str) -> dict[str, object]:
    return jwt.decode(output.strip(), SECRET, algorithms=["HS256"], audience="poi")


@pytest.mark.parametrize("scope", ["", "UA", "UA8", "UA800", "ua80"])
def test_a_scope_off_the_katotth_levels_is_refused(runner: CliRunner, scope: str) -> None:
    result = runner.invoke(app, ["token", "--role", "coordinator", "--katotth", scope])
    assert result.exit_code == 2
    assert "--katotth" in result.output and "oblast level or below" in result.output


def test_a_point_that_is_not_a_uuid_is_refused(runner: CliRunner) -> None:
    result = runner.invoke(app, ["token", "--role", "operator", "--point", "p-1"])
    assert result.exit_code == 2 and "--point" in result.output


def test_scopes_are_issued_as_the_services_read_them(runner: CliRunner) -> None:
    point_id = uuid.uuid4()
    args = ["token", "--role", "coordinator", "--role", "operator", "--katotth", "UA80", "--katotth", "UA4606"]
    result = runner.invoke(app, [*args, "--point", str(point_id).upper()])
    assert result.exit_code == 0, result.output
    issued = claims(result.output)
    assert issued["katotth"] == ["UA80", "UA4606"] and issued["points"] == [str(point_id)]
