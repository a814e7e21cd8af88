"""`poi import`: upload an import file to the registry with a progress bar and show its report."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

CHUNK_BYTES = 64 * 1024
SHOWN_ERRORS = 30
IMPORT_TIMEOUT_S = 300.0  # the registry checks and stores every row before it answers


def media_type(path: Path) -> str:
    """The import's content type from the file name: GeoJSON for .geojson or .json, else CSV."""
    return "application/geo+json" if path.suffix.lower() in (".geojson", ".json") else "text/csv"


def upload_import(path: Path, *, base_url: str, token: str, partial: bool, console: Console) -> int:
    """Send the file to POST /v1/points/import and print what the registry did; returns the exit code."""
    size = path.stat().st_size
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"uploading {path.name}", total=size)

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as file:
                while chunk := file.read(CHUNK_BYTES):
                    yield chunk
                    progress.advance(task, len(chunk))
            progress.update(task, description="the registry checks and stores every row…", total=None)

        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": media_type(path),
            "Content-Length": str(size),  # so an oversized file is refused before it is sent
        }
        try:
            with httpx.Client(timeout=httpx.Timeout(IMPORT_TIMEOUT_S, connect=5)) as client:
                response = client.post(
                    f"{base_url.rstrip('/')}/v1/points/import",
                    params={"partial": "true"} if partial else None,
                    content=chunks(),
                    headers=headers,
                )
        except httpx.HTTPError as exc:
            console.print(
                f"poi import: the registry at {base_url} does not answer ({exc}); is it running?", style="red"
            )
            return 1
    body: dict[str, Any] = response.json() if response.content else {}
    if response.status_code == 200:
        _print_report(console, body, body.get("errors", []))
        return 0
    report = body.get("report")
    console.print(f"poi import: {response.status_code} {body.get('title', '')}: {body.get('detail', '')}", style="red")
    if report:
        _print_report(console, report, report.get("errors", []))
    elif body.get("errors"):
        for error in body["errors"]:
            console.print(f"  {error['location']}: {error['message']}", style="red", markup=False)
    return 1


def _print_report(console: Console, report: dict[str, Any], errors: list[dict[str, Any]]) -> None:
    """The counts, then the first row errors."""
    console.print(
        f"{report['rows']} rows: {report['created']} created, {report['updated']} updated, "
        f"{report['unchanged']} unchanged, {report['failed']} with errors"
    )
    if not errors:
        return
    table = Table(title=f"Row errors (first {min(len(errors), SHOWN_ERRORS)} of {report['failed']} rows)")
    for name in ("row", "column", "problem"):
        table.add_column(name)
    for error in errors[:SHOWN_ERRORS]:
        table.add_row(str(error["row"]), error["column"], error["message"])
    console.print(table)
