"""`poi seed --output` writes the national dataset as an import file the registry reads without a fault."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from poi_cli.main import app
from poi_registry.bulk import formats
from poi_registry.bulk.service import prepare
from poi_registry.data import IMPORT_COLUMNS
from poi_shared.auth import Principal, Role

ADMIN = Principal(subject="test", roles=frozenset({Role.admin}))


@pytest.mark.parametrize(("name", "media_type"), [("points.csv", formats.CSV), ("points.geojson", formats.GEOJSON)])
def test_the_dataset_file_imports_cleanly(tmp_path: Path, name: str, media_type: str) -> None:
    path = tmp_path / name
    result = CliRunner().invoke(app, ["seed", "--count", "300", "--output", str(path)])
    assert result.exit_code == 0, result.output
    assert "wrote 300 points" in result.output and "GeoNames" in result.output
    prepared = prepare(path.read_bytes(), media_type=media_type, max_rows=300, caller=ADMIN)
    assert prepared.rows == 300 and not prepared.problems and len(prepared.staged) == 300
    # Every optional column is in the file, so an import writes every field.
    assert {"schedule", "contact_phone", "public_phone", "operator_org", "visibility"} <= set(prepared.written)
    kinds = {row[IMPORT_COLUMNS.index("schedule")] for row in prepared.staged}  # JSON text
    assert any('"weekly"' in k for k in kinds) and any('"on_blackout"' in k for k in kinds)
