"""`poi keys`: issue, list and revoke integrator API keys, straight in the search service's key bucket.

The same functions serve the admin API (`POST /v1/keys`…): every search replica watches the bucket, so a key
issued or revoked here works, or stops working, on all of them within moments, whether search runs or not.
"""

import asyncio
import getpass
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import nats
import typer
from nats.js.kv import KeyValue
from rich.console import Console
from rich.table import Table

from poi_cli import stack
from poi_search import data
from poi_search.keys import service
from poi_search.keys.models import MAX_RATE_LIMIT
from poi_shared.settings import NAMESPACE_PATTERN

app = typer.Typer(help="Integrator API keys for search: issue, list, revoke.", no_args_is_help=True)
console = Console()
T = TypeVar("T")

NatsUrl = Annotated[
    str | None, typer.Option(envvar="POI_NATS_URL", help="The broker; default: the dev stack's embedded NATS.")
]
Namespace = Annotated[str, typer.Option(envvar="POI_NAMESPACE", help="Prefix of the streams and the key bucket.")]
PortOffset = Annotated[int, typer.Option(envvar="POI_PORT_OFFSET", help="The dev stack's port offset.")]


@app.command()
def issue(
    name: Annotated[str, typer.Option(help="Who the key is for, e.g. Diia.")],
    rate_limit: Annotated[
        int | None,
        typer.Option(min=1, max=MAX_RATE_LIMIT, help="Requests per rate-limit window; default: the integrators'."),
    ] = None,
    issued_by: Annotated[str, typer.Option(help="Recorded as who issued it.")] = getpass.getuser(),
    nats_url: NatsUrl = None,
    namespace: Namespace = "poi",
    port_offset: PortOffset = 0,
) -> None:
    """Issue a key and print it: it is stored only as a hash and cannot be shown again."""
    if not 2 <= len(name.strip()) <= 100 or re.search(r"[\x00-\x1f]", name):
        raise typer.BadParameter("2 to 100 characters on one line", param_hint="--name")
    record, key = _run(
        nats_url,
        namespace,
        port_offset,
        lambda kv: service.issue_key(kv, name=name.strip(), rate_limit=rate_limit, issued_by=f"cli:{issued_by}"),
    )
    console.print(f"Issued key {record.id} for {record.name}. Send it as the X-API-Key header; it is shown only now:")
    print(key)


@app.command("list")
def list_command(nats_url: NatsUrl = None, namespace: Namespace = "poi", port_offset: PortOffset = 0) -> None:
    """Every key, active and revoked (never the keys themselves)."""
    records = _run(nats_url, namespace, port_offset, service.list_keys)
    table = Table(title=f"Integrator keys in {data.keys_bucket(namespace)}")
    table.add_column("id", no_wrap=True, min_width=12)  # what `poi keys revoke` takes: never folded
    for column in ("name", "rate limit", "created", "by", "revoked", "by"):
        table.add_column(column, overflow="fold")
    for r in records:
        revoked = f"{r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else ""
        limit = str(r.rate_limit) if r.rate_limit else "default"
        table.add_row(r.id, r.name, limit, f"{r.created_at:%Y-%m-%d %H:%M}", r.created_by, revoked, r.revoked_by or "")
    console.print(table if records else "No keys.")


@app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `poi keys list`).")],
    revoked_by: Annotated[str, typer.Option(help="Recorded as who revoked it.")] = getpass.getuser(),
    nats_url: NatsUrl = None,
    namespace: Namespace = "poi",
    port_offset: PortOffset = 0,
) -> None:
    """Revoke a key: every search replica refuses it within moments."""
    record = _run(
        nats_url,
        namespace,
        port_offset,
        lambda kv: service.revoke_key(kv, key_id=key_id, revoked_by=f"cli:{revoked_by}"),
    )
    if record is None:
        console.print(f"[red]no key {key_id}[/]")
        raise typer.Exit(1)
    console.print(f"Revoked key {record.id} of {record.name}.")


def _run(nats_url: str | None, namespace: str, port_offset: int, work: Callable[[KeyValue], Awaitable[T]]) -> T:
    """Connect, open the bucket, do the work; a clear message and exit 1 when the broker does not answer."""
    if not re.fullmatch(NAMESPACE_PATTERN, namespace):
        raise typer.BadParameter(f"namespace must match {NAMESPACE_PATTERN}", param_hint="--namespace")
    url = nats_url or f"nats://127.0.0.1:{stack.EMBEDDED_PORTS['nats'] + port_offset}"

    async def go() -> T:
        async with stack.command_jetstream(url, name="poi-keys") as js:
            return await work(await data.open_keys(js, namespace))

    try:
        return asyncio.run(go())
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        console.print(f"[red]cannot reach NATS at {url}: {exc!r}[/]")
    raise typer.Exit(1)
