"""What `poi run` checks before it starts anything."""

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from poi_cli import stack
from poi_cli.main import app

INVALID_NAMESPACES = ["", "Poi", "1poi", "poi-x", "poi_x", "a" * 17, "poi\n", 'poi"; DROP DATABASE postgres; --']


@pytest.mark.parametrize("namespace", INVALID_NAMESPACES)
def test_invalid_namespace_never_names_a_database(namespace: str) -> None:
    """The namespace reaches CREATE DATABASE unquoted, so anything outside the settings' pattern is refused."""
    with pytest.raises(ValueError, match="namespace"):
        stack.database_name(namespace, "registry")


def test_valid_namespaces_name_databases() -> None:
    """The default and the test sessions' namespaces pass."""
    assert stack.database_name("poi", "registry") == "poi_registry"
    assert stack.database_name("t0a1b2c3d", "notify") == "t0a1b2c3d_notify"
    assert stack.database_name("a" * 16, "status") == f"{'a' * 16}_status"


def test_prepare_databases_refuses_before_connecting() -> None:
    """An invalid namespace fails as such, not as a connection error to the (unreachable) server."""
    with pytest.raises(ValueError, match="namespace"):
        asyncio.run(stack.prepare_databases("postgresql://postgres@127.0.0.1:9/postgres", "Bad-Name"))


@pytest.mark.parametrize("how", ["option", "environment"])
def test_poi_run_refuses_an_invalid_namespace_before_starting_anything(how: str, tmp_path: Path) -> None:
    """Both --namespace and POI_NAMESPACE are checked before anything else, even the data directory."""
    (tmp_path / "file").write_text("")
    data_dir = tmp_path / "file" / "data"  # unusable, so that nothing could start if the check were missing
    args = ["run", "--data-dir", str(data_dir)]
    env = {"POI_NAMESPACE": "x; DROP"} if how == "environment" else {}
    if how == "option":
        args += ["--namespace", "x; DROP"]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2
    assert "--namespace" in result.output
    assert "lower-case letter" in result.output
    assert "Starting" not in result.output
    assert not data_dir.exists()
