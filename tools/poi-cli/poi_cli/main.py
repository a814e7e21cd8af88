"""The `poi` command: run the development stack, migrate, seed, import, issue development tokens and integrator keys."""

import asyncio
import os
import signal
import time
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from poi_cli import deadletters, keys, stack
from poi_cli.demo import NATIONAL_POINTS
from poi_cli.seed import seed_points, write_dataset
from poi_cli.supervisor import GaveUp, Supervisor
from poi_shared import db
from poi_shared.auth import Role, issue_token, katotth_scope, point_scope

app = typer.Typer(help="Points of Invincibility backend: development and operations commands.", no_args_is_help=True)
app.add_typer(deadletters.app, name="deadletters")
app.add_typer(keys.app, name="keys")
console = Console()
error_console = Console(stderr=True)


def _valid_namespace(namespace: str) -> str:
    try:
        return stack.check_namespace(namespace)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


DataDir = Annotated[Path, typer.Option(envvar="POI_DATA_DIR", help="Where embedded servers keep data and logs.")]
Namespace = Annotated[
    str,
    typer.Option(envvar="POI_NAMESPACE", callback=_valid_namespace, help="Prefix of databases, streams and keys."),
]
# Which embedded server each POI_*_URL replaces.
SERVER_URL_VARIABLES = {"postgres": "POI_DATABASE_URL", "nats": "POI_NATS_URL", "redis": "POI_REDIS_URL"}


class DatabaseService(StrEnum):
    """Services that own a database."""

    registry = "registry"
    status = "status"
    notify = "notify"


@app.command()
def run(
    data_dir: DataDir = Path(".data"),
    namespace: Namespace = "poi",
    port_offset: Annotated[int, typer.Option(envvar="POI_PORT_OFFSET", help="Added to every port.")] = 0,
    demo_points: Annotated[
        int, typer.Option(min=0, max=50_000, help="Points of the national dataset loaded into an empty register.")
    ] = NATIONAL_POINTS,
    ready_timeout: Annotated[float, typer.Option(help="Seconds to wait for every /readyz.")] = 60.0,
) -> None:
    """Start PostgreSQL, NATS and Redis (embedded unless POI_*_URL are set) and the four services; Ctrl-C stops all.

    A server or service that dies is reported and started again with backoff.
    """
    data_dir = data_dir.resolve()
    urls = {server: os.environ.get(variable) for server, variable in SERVER_URL_VARIABLES.items()}
    ports = {name: port + port_offset for name, port in stack.EMBEDDED_PORTS.items()}
    service_ports = {name: port + port_offset for name, port in stack.SERVICE_PORTS.items()}
    needed_ports = {**service_ports, **{name: port for name, port in ports.items() if urls[name] is None}}
    try:
        lock = stack.lock_data_dir(data_dir, needed_ports)
        stack.check_ports_free(needed_ports)
    except stack.StackBusy as exc:
        error_console.print(f"poi run: {exc}", style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    # Ctrl-C and SIGTERM both mean an orderly stop, even where the parent shell set SIGINT to be ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    supervisor = Supervisor(report=_report)
    try:
        console.print("[bold]Starting infrastructure…[/]")
        infra = stack.start_infrastructure(
            data_dir, database_url=urls["postgres"], nats_url=urls["nats"], redis_url=urls["redis"], ports=ports
        )
        for server in infra.started:
            supervisor.adopt_server(server)
        database_urls = asyncio.run(stack.prepare_databases(infra.database_url, namespace))
        if demo_points:
            started = time.monotonic()
            report = asyncio.run(
                seed_points(database_urls["registry"], namespace=namespace, count=demo_points, only_if_empty=True)
            )
            if report is not None:
                console.print(
                    f"Loaded {report.created} points of the national dataset in {time.monotonic() - started:.1f}s "
                    "(settlements: GeoNames, CC BY 4.0)."
                )
        secret = stack.auth_secret(data_dir)
        for service, port in service_ports.items():
            env = stack.service_env(service, infra, database_urls, namespace=namespace, secret=secret)
            if service == "notify" and "search" in service_ports:  # SMS lookups ask this stack's search
                env.setdefault("POI_NOTIFY_SEARCH_URL", f"http://127.0.0.1:{service_ports['search']}")
            log = data_dir / "logs" / f"{service}.log"
            supervisor.start_service(service, log, partial(stack.start_service, service, port, env, log))
        stack.wait_ready(service_ports, supervisor.processes(), ready_timeout)
        _print_endpoints(infra, service_ports, data_dir)
        while True:
            supervisor.check()
            time.sleep(0.5)
    except KeyboardInterrupt:
        console.print("\nStopping…")
    except (GaveUp, RuntimeError, TimeoutError, OSError) as exc:
        _report(f"{exc}\nStopping everything; logs are in {data_dir / 'logs'}.", style="red")
        raise typer.Exit(1) from None
    finally:
        supervisor.stop()
        console.print("Stopped.")
        lock.close()


def _report(message: str, style: str = "yellow") -> None:
    """A supervision message, as is: log lines may hold brackets that rich would take for markup."""
    console.print(message, style=style, markup=False, highlight=False, soft_wrap=True)


def _print_endpoints(infra: stack.Infrastructure, ports: dict[str, int], data_dir: Path) -> None:
    table = Table(title="Points of Invincibility — running")
    table.add_column("service")
    table.add_column("URL")
    table.add_column("OpenAPI docs")
    for service, port in ports.items():
        table.add_row(service, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/docs")
    console.print(table)
    console.print(f"PostgreSQL {_redact(infra.database_url)}  NATS {infra.nats_url}  Redis {_redact(infra.redis_url)}")
    console.print(f"Logs: {data_dir / 'logs'}   Dev token: `.venv/bin/poi token --role admin`   Ctrl-C stops.")


def _redact(url: str) -> str:
    """Hide a password in a URL."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        return f"{scheme}{sep}{creds.split(':')[0]}:***@{host}" if ":" in creds else url
    return url


@app.command()
def migrate(
    service: Annotated[list[DatabaseService] | None, typer.Option(help="Only these services.")] = None,
) -> None:
    """Apply each service's migrations to the database in its POI_<SERVICE>_DATABASE_URL."""
    from poi_notify.settings import NotifySettings
    from poi_registry.settings import RegistrySettings
    from poi_status.settings import StatusSettings

    settings = {"registry": RegistrySettings, "status": StatusSettings, "notify": NotifySettings}
    for name in service or list(DatabaseService):
        url = settings[name.value]().database_url
        applied = asyncio.run(db.migrate(url, stack.DATABASE_SERVICES[name.value]))
        console.print(f"{name.value}: {', '.join(applied) or 'up to date'}")


@app.command()
def seed(
    count: Annotated[int, typer.Option(min=1, max=50_000, help="How many points.")] = NATIONAL_POINTS,
    output: Annotated[
        Path | None, typer.Option(help="Write the dataset to this file (.csv, or .geojson) instead of loading it.")
    ] = None,
    only_if_empty: Annotated[bool, typer.Option(help="Skip when the register holds points.")] = False,
) -> None:
    """Generate the national dataset (10,676 points over real settlements) and load it into the registry database
    of POI_REGISTRY_DATABASE_URL through the import, or write it as an import file.

    Points keep their dataset codes, so seeding again changes nothing.
    """
    if output is not None:
        written = write_dataset(output, count=count)
        console.print(f"wrote {written} points to {output} (settlements: GeoNames, CC BY 4.0)")
        return
    from poi_registry.settings import RegistrySettings

    settings = RegistrySettings()
    report = asyncio.run(
        seed_points(settings.database_url, namespace=settings.namespace, count=count, only_if_empty=only_if_empty)
    )
    if report is None:
        console.print("the register holds points; left as it is")
        return
    console.print(
        f"{report.created} points registered, {report.updated} updated, {report.unchanged} unchanged "
        "(settlements: GeoNames, CC BY 4.0)"
    )


@app.command(name="import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A .csv or .geojson import file.")],
    partial: Annotated[bool, typer.Option(help="Import the valid rows even if some are invalid.")] = False,
    url: Annotated[str, typer.Option(envvar="POI_REGISTRY_URL", help="The registry's base URL.")] = "",
    token: Annotated[
        str | None, typer.Option(envvar="POI_TOKEN", help="Bearer token (default: a dev admin token).")
    ] = None,
    data_dir: DataDir = Path(".data"),
) -> None:
    """Upload a CSV or GeoJSON file to the registry's import, with a progress bar, and show its row-by-row report."""
    from poi_cli.upload import upload_import

    base = url or f"http://127.0.0.1:{stack.SERVICE_PORTS['registry'] + int(os.environ.get('POI_PORT_OFFSET', '0'))}"
    bearer = token or issue_token(stack.auth_secret(data_dir.resolve()), subject="poi-import", roles=["admin"])
    code = upload_import(file, base_url=base, token=bearer, partial=partial, console=console)
    raise typer.Exit(code)


@app.command(name="oblast-extents")
def oblast_extents(
    output: Annotated[Path, typer.Option(help="Where to write the file.")] = Path(
        "services/registry/poi_registry/oblasts/oblast_extents.json"
    ),
) -> None:
    """Regenerate the oblast extents the registry checks coordinates against (from GeoNames; for developers)."""
    from poi_cli.extents import write_extents

    console.print(f"wrote {write_extents(output)} oblasts to {output}")


def _katotth_scope(values: list[str] | None) -> list[str] | None:
    """Refuse a scope the services would refuse: an empty one would otherwise cover all of Ukraine."""
    try:
        return list(katotth_scope(values or []))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _point_scope(values: list[str] | None) -> list[str] | None:
    """Refuse a point id that is not a UUID."""
    try:
        return [str(p) for p in sorted(point_scope(values or []))]
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


@app.command()
def token(
    role: Annotated[list[Role], typer.Option(help="Roles to grant (repeat for several).")],
    katotth: Annotated[
        list[str] | None,
        typer.Option(
            help="Coordinator scope: a KATOTTH code cut at oblast level or below (UA80, UA4606…).",
            callback=_katotth_scope,
        ),
    ] = None,
    point: Annotated[
        list[str] | None, typer.Option(help="Operator scope: a point id (UUID).", callback=_point_scope)
    ] = None,
    subject: Annotated[str, typer.Option(help="Account id put in `sub`.")] = "dev-user",
    ttl_hours: Annotated[float, typer.Option(min=0.01, max=24 * 30)] = 12.0,
    data_dir: DataDir = Path(".data"),
) -> None:
    """Print a development token signed with the dev stack's secret (POI_AUTH_SECRET or .data/auth-secret)."""
    secret = stack.auth_secret(data_dir.resolve())
    print(
        issue_token(
            secret,
            subject=subject,
            roles=[r.value for r in role],
            katotth=katotth,
            points=point,
            ttl_s=int(ttl_hours * 3600),
            issuer=os.environ.get("POI_AUTH_ISSUER", "poi-dev"),
            audience=os.environ.get("POI_AUTH_AUDIENCE", "poi"),
        )
    )


@app.command()
def asyncapi(
    output: Annotated[Path, typer.Option(help="Where to write the document.")] = Path("docs/asyncapi.yaml"),
) -> None:
    """Write the AsyncAPI 3.0 document generated from the event contract."""
    from poi_shared.asyncapi import render_yaml

    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_yaml())
    console.print(f"wrote {output}")


if __name__ == "__main__":
    app()
