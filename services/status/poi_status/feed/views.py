"""The live feed's route."""

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from starlette.responses import StreamingResponse

from poi_shared.contracts import KATOTTH_PREFIX_PATTERN
from poi_status.dependencies import JetStream, Known, Pool, Settings
from poi_status.feed import service

router = APIRouter(prefix="/v1/status", tags=["feed"])


class EventStream(StreamingResponse):
    """A text/event-stream response from a stream of events this service formats itself.

    Not FastAPI's EventSourceResponse: a route declaring that must be a generator, and this one first finds where
    the client's stream starts, so that a broker that does not answer is a 503, not a broken stream.
    """

    media_type = "text/event-stream"


FEED_DESCRIPTION = """Server-Sent Events, one per status change of a point the public may see:

- `event: changed` (a report or an area switch), `stale` (stopped reporting, now unknown) or `low_fuel`;
- `id:` the event's position in the status stream, the same on every replica: reconnect with `Last-Event-ID`
  (browsers' EventSource does) to get what you missed, up to the configured number of events;
- `data:` the point's status, as `GET /v1/points/{point_id}/status` answers it.

A client that missed more gets `event: reset` first: read the current status again, then follow. Idle streams
get a comment line (`: heartbeat`) regularly, so proxies keep them open."""


@router.get(
    "/feed",
    response_class=EventStream,
    summary="Live feed of status changes",
    description=FEED_DESCRIPTION,
    responses={
        200: {"description": "The event stream.", "content": {"text/event-stream": {"schema": {"type": "string"}}}}
    },
)
async def status_feed(
    request: Request,
    js: JetStream,
    pool: Pool,
    directory: Known,
    settings: Settings,
    katotth: Annotated[
        str, Query(pattern=KATOTTH_PREFIX_PATTERN, description="Only points whose KATOTTH code starts with this.")
    ] = "UA",
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", pattern=r"^\d{1,18}$", description="Resume after this event."),
    ] = None,
    after: Annotated[
        int | None,
        Query(
            ge=0,
            le=10**18,
            description="Resume after this event (for clients that cannot send Last-Event-ID); the header wins.",
        ),
    ] = None,
) -> EventStream:
    """Public: status changes as they happen, filtered by area, resumable."""
    resume = int(last_event_id) if last_event_id is not None else after
    start = await service.start_for(
        js, namespace=settings.namespace, last_event_id=resume, replay_max=settings.feed_replay_max
    )
    stream = service.follow(
        js,
        pool,
        directory,
        namespace=settings.namespace,
        start=start,
        katotth=katotth,
        heartbeat_s=settings.feed_heartbeat_s,
        stop=request.app.state.feed_stop,
    )
    return EventStream(stream, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
