"""A bench-only search app: the real nearest router over demo points in memory, without NATS or tracing."""

import json
import os
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

from fastapi import FastAPI

from poi_cli.demo import demo_points
from poi_registry.points.models import PointCreate
from poi_search.catalog.readmodel import ReadModel
from poi_search.catalog.views import router as search_router
from poi_search.settings import SearchSettings
from poi_shared.contracts import POINT_REGISTERED, STATUS_CHANGED, OpenState, PointState, StatusState
from poi_shared.envelope import build_message, parse_message

POINT_COUNT = 17_000
OPEN_SHARE = 0.7
EVENTS_ENV = "BENCH_SEARCH_EVENTS"

Message = tuple[dict[str, str], bytes]


def demo_messages(count: int = POINT_COUNT, seed: int = 7) -> list[Message]:
    """Point and status events as the service receives them (headers, body); ~70% open, the rest closed/unknown."""
    rng, now = random.Random(seed), datetime.now(UTC)
    messages: list[Message] = []
    for n, raw in enumerate(demo_points(count, seed=seed)):
        fields = PointCreate.model_validate(raw).model_dump(exclude={"contact_phone"})
        point = PointState(id=uuid4(), code=f"B-{n:06d}", version=1, updated_at=now, retired=False, **fields)
        state = OpenState.open if rng.random() < OPEN_SHARE else rng.choice((OpenState.closed, OpenState.unknown))
        status = StatusState(point_id=point.id, version=1, state=state, reported_at=now, reported_by="bench")
        for event_type, data in ((POINT_REGISTERED, point), (STATUS_CHANGED, status)):
            msg = build_message(namespace="poi", event_type=event_type, key=str(point.id), data=data, source="bench")
            messages.append((msg.headers, msg.body))
    return messages


def write_events(path: Path, messages: list[Message]) -> None:
    """Store events as JSON lines, so the server and the cold build read the same ones."""
    with path.open("w", encoding="utf-8") as f:
        for headers, body in messages:
            f.write(json.dumps({"headers": headers, "body": body.decode()}) + "\n")


def read_events(path: Path) -> list[Message]:
    """Events stored by write_events."""
    with path.open(encoding="utf-8") as f:
        return [(e["headers"], e["body"].encode()) for e in map(json.loads, f)]


def build_read_model(messages: list[Message]) -> ReadModel:
    """Parse and apply every event as the service's stream follower does."""
    model = ReadModel()
    for headers, body in messages:
        data = parse_message(headers, body).data
        if isinstance(data, PointState):
            model.apply_point(data)
        elif isinstance(data, StatusState):
            model.apply_status(data)
    return model


def cold_build_seconds(path: Path) -> float:
    """Seconds to build the read model from stored events (run in a fresh process for a cold figure)."""
    messages = read_events(path)
    start = time.perf_counter()
    build_read_model(messages)
    return time.perf_counter() - start


def create_app() -> FastAPI:
    """The app for `uvicorn --factory`: events from $BENCH_SEARCH_EVENTS if set, else freshly generated."""
    path = os.environ.get(EVENTS_ENV)
    model = build_read_model(read_events(Path(path)) if path else demo_messages())
    app = FastAPI(title="bench: search nearest")
    # The model is complete from the start: its data is as fresh as the events it was built from.
    app.state.settings, app.state.read_model, app.state.data_age = SearchSettings(), model, lambda: 0.0
    app.include_router(search_router)

    @app.get("/empty", response_model=None)
    async def empty() -> dict[str, object]:
        """Baseline: the cheapest JSON answer FastAPI gives."""
        return {}

    return app


if __name__ == "__main__":
    print(cold_build_seconds(Path(sys.argv[1])))
