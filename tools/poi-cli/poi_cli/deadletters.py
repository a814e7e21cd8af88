"""`poi deadletters`: inspect the messages consumers gave up on, and send them back to their consumer."""

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, TypeVar

import nats
import typer
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError
from rich.console import Console
from rich.table import Table

from poi_cli import stack
from poi_shared.contracts import DEAD_LETTERS, REPLAY
from poi_shared.jetstream import DEAD_CONSUMER, DEAD_REASON, DEAD_SUBJECT, ORIGINAL_SUBJECT, publish
from poi_shared.settings import NAMESPACE_PATTERN

app = typer.Typer(
    help="Messages consumers gave up on: list them, show one, send them back to their consumer.",
    no_args_is_help=True,
)
console = Console()
T = TypeVar("T")

NatsUrl = Annotated[
    str | None,
    typer.Option(envvar="POI_NATS_URL", help="The broker; default: the dev stack's embedded NATS."),
]
Namespace = Annotated[str, typer.Option(envvar="POI_NAMESPACE", help="Prefix of the streams.")]
PortOffset = Annotated[int, typer.Option(envvar="POI_PORT_OFFSET", help="The dev stack's port offset.")]
Consumer = Annotated[str | None, typer.Option(help="Only this durable consumer's, e.g. notify-status.")]


@dataclass(frozen=True)
class DeadLetter:
    """One message a consumer gave up on, as stored in the dead-letter stream."""

    seq: int
    time: datetime | None
    consumer: str
    subject: str
    reason: str
    headers: dict[str, str]
    body: bytes

    @property
    def ce_type(self) -> str:
        """The event type it claims to be, if any."""
        return self.headers.get("ce-type", "")


async def list_dead_letters(
    js: JetStreamContext, namespace: str, *, consumer: str | None = None, after: int = 0, limit: int = 50
) -> list[DeadLetter]:
    """Up to limit dead letters with a sequence above after, oldest first; only consumer's if given."""
    stream = DEAD_LETTERS.stream_name(namespace)
    wanted = DEAD_LETTERS.subject(namespace, consumer) if consumer else DEAD_LETTERS.wildcard(namespace)
    found: list[DeadLetter] = []
    seq = after + 1
    while len(found) < limit:
        try:
            raw = await js.get_msg(stream, seq=seq, subject=wanted, next=True)
        except NotFoundError:
            break
        found.append(_dead_letter(raw))
        seq = found[-1].seq + 1
    return found


async def get_dead_letter(js: JetStreamContext, namespace: str, seq: int) -> DeadLetter:
    """The dead letter with this sequence; LookupError if there is none."""
    try:
        raw = await js.get_msg(DEAD_LETTERS.stream_name(namespace), seq=seq)
    except NotFoundError as exc:
        raise LookupError(f"no dead letter {seq}") from exc
    return _dead_letter(raw)


async def replay(js: JetStreamContext, namespace: str, seq: int) -> DeadLetter:
    """Send one dead letter back to the consumer that gave up on it; removed once the broker stored the replay.

    It goes to the replay stream, never to its original subject: there it would become the newest message of
    the subject, which search replicas rebuild from. It keeps its original headers, so the consumer's inbox or
    version check still recognises an event it has handled since.
    """
    dead = await get_dead_letter(js, namespace, seq)
    headers = {k: v for k, v in dead.headers.items() if k not in (DEAD_CONSUMER, DEAD_REASON, DEAD_SUBJECT)}
    headers[ORIGINAL_SUBJECT] = dead.subject
    headers["Nats-Msg-Id"] = f"replay:{seq}"  # replaying the same dead letter twice sends it once
    await publish(js, REPLAY.subject(namespace, dead.consumer), dead.body, headers)
    await js.delete_msg(DEAD_LETTERS.stream_name(namespace), seq)
    return dead


async def replay_consumer(js: JetStreamContext, namespace: str, consumer: str) -> list[DeadLetter]:
    """Send every dead letter of one consumer back to it, oldest first."""
    replayed: list[DeadLetter] = []
    after = 0
    while page := await list_dead_letters(js, namespace, consumer=consumer, after=after, limit=100):
        for dead in page:
            replayed.append(await replay(js, namespace, dead.seq))
        after = page[-1].seq
    return replayed


def _dead_letter(raw: api.RawStreamMsg) -> DeadLetter:
    """A dead letter from a stored message."""
    headers: dict[str, str] = dict(raw.headers or {})
    return DeadLetter(
        seq=raw.seq or 0,
        time=raw.time,
        # The subject's last token names the consumer, even for a message whose headers were mangled.
        consumer=(raw.subject or "").rsplit(".", 1)[-1],
        subject=headers.get(DEAD_SUBJECT, ""),
        reason=headers.get(DEAD_REASON, ""),
        headers=headers,
        body=raw.data or b"",
    )


@app.command("list")
def list_command(
    consumer: Consumer = None,
    after: Annotated[int, typer.Option(min=0, help="Start after this sequence (the previous page's last).")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 50,
    nats_url: NatsUrl = None,
    namespace: Namespace = "poi",
    port_offset: PortOffset = 0,
) -> None:
    """List dead letters, oldest first: sequence, time, consumer, original subject, event type and reason."""
    found = _run(
        nats_url,
        namespace,
        port_offset,
        lambda js: list_dead_letters(js, namespace, consumer=consumer, after=after, limit=limit),
    )
    table = Table(title=f"Dead letters in {DEAD_LETTERS.stream_name(namespace)}")
    for column in ("seq", "time", "consumer", "subject", "ce-type", "reason"):
        table.add_column(column, overflow="fold")
    for dead in found:
        when = f"{dead.time:%Y-%m-%d %H:%M:%S}" if dead.time else ""
        table.add_row(str(dead.seq), when, dead.consumer, dead.subject, dead.ce_type, dead.reason)
    console.print(table)
    if len(found) == limit:
        console.print(f"More may follow: --after {found[-1].seq}")
    elif not found:
        console.print("No dead letters.")


@app.command()
def show(
    seq: Annotated[int, typer.Argument(min=1, help="The dead letter's sequence (from `list`).")],
    nats_url: NatsUrl = None,
    namespace: Namespace = "poi",
    port_offset: PortOffset = 0,
) -> None:
    """Show one dead letter: every header, then the body."""
    dead = _run(nats_url, namespace, port_offset, lambda js: get_dead_letter(js, namespace, seq))
    table = Table(title=f"Dead letter {dead.seq} of {dead.consumer}", show_header=False)
    table.add_column("header", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in dead.headers.items():
        table.add_row(name, value)
    console.print(table)
    try:
        console.print_json(dead.body.decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        console.print(repr(dead.body))


@app.command("replay")
def replay_command(
    seq: Annotated[int | None, typer.Argument(min=1, help="The dead letter to send back.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead letter of --consumer.")] = False,
    consumer: Consumer = None,
    nats_url: NatsUrl = None,
    namespace: Namespace = "poi",
    port_offset: PortOffset = 0,
) -> None:
    """Send a dead letter (or --all of a --consumer's) back to the consumer that gave up on it, and remove it."""
    if (seq is None) == (not all_) or (all_ and not consumer):
        raise typer.BadParameter("give a sequence, or --all with --consumer")
    if seq is not None:
        replayed = _run(nats_url, namespace, port_offset, lambda js: replay(js, namespace, seq))
        console.print(f"Replayed {replayed.seq} to {replayed.consumer}.")
    else:
        assert consumer is not None
        done = _run(nats_url, namespace, port_offset, lambda js: replay_consumer(js, namespace, consumer))
        console.print(f"Replayed {len(done)} dead letters to {consumer}.")


def _run(nats_url: str | None, namespace: str, port_offset: int, work: Callable[[JetStreamContext], Awaitable[T]]) -> T:
    """Connect, check the dead-letter stream is there, do the work; a clear message and exit 1 on failure."""
    if not re.fullmatch(NAMESPACE_PATTERN, namespace):
        raise typer.BadParameter(f"namespace must match {NAMESPACE_PATTERN}", param_hint="--namespace")
    url = nats_url or f"nats://127.0.0.1:{stack.EMBEDDED_PORTS['nats'] + port_offset}"

    async def go() -> T:
        async with stack.command_jetstream(url, name="poi-deadletters") as js:
            try:
                await js.stream_info(DEAD_LETTERS.stream_name(namespace))
            except NotFoundError:
                raise LookupError(f"no stream {DEAD_LETTERS.stream_name(namespace)} on {url}") from None
            return await work(js)

    try:
        return asyncio.run(go())
    except LookupError as exc:
        console.print(f"[red]{exc}[/]")
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        console.print(f"[red]cannot reach NATS at {url}: {exc!r}[/]")
    raise typer.Exit(1)
