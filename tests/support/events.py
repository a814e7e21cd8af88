"""Events as the services publish them, for tests that put them on the broker themselves."""

import uuid
from datetime import UTC, datetime

from poi_shared.contracts import STATUS_CHANGED, OpenState, StatusState
from poi_shared.envelope import OutgoingMessage, build_message


def status_event(namespace: str, point_id: uuid.UUID | None = None) -> OutgoingMessage:
    """A valid status event for a point (a new one unless given), as status itself would publish it."""
    state = StatusState(
        point_id=point_id or uuid.uuid4(),
        version=1,
        state=OpenState.open,
        reported_at=datetime.now(UTC),
        reported_by="faults",
    )
    return build_message(
        namespace=namespace, event_type=STATUS_CHANGED, key=str(state.point_id), data=state, source="/t"
    )
