"""The change feed: pages of changes after a cursor of stream sequences, the same on every replica."""

import time

from poi_search.catalog.readmodel import ReadModel
from poi_search.http import seconds, weak_etag


def parse_cursor(cursor: str | None, model: ReadModel) -> tuple[int, int]:
    """(points, status) sequences of a cursor; without one, from the start with statuses as they are now.

    Starting without a cursor, every point comes as an upsert with its current status, so status changes older
    than the first page need not follow: the status sequence starts at this replica's head.
    """
    if cursor is None:
        return 0, model.heads()[1]
    points, status = cursor.split("-")
    return int(points), int(status)


def changes_page(model: ReadModel, *, after: tuple[int, int], limit: int, age_s: float) -> tuple[bytes, str]:
    """A page of the feed as JSON, and its weak ETag."""
    changes, next_points, next_status, more = model.changes(after_points=after[0], after_status=after[1], limit=limit)
    now = time.time()
    items = []
    for change in changes:
        record = model.records[change.slot]
        head = b'{"id":"' + record.id.encode()
        if change.removed:
            items.append(head + b'","change":"remove","point":null}')
        else:
            items.append(head + b'","change":"upsert","point":' + record.item(record.age(now), b"") + b"}")
    cursor = f"{next_points}-{next_status}"
    body = b"".join(
        (
            b'{"items":[',
            b",".join(items),
            b'],"count":',
            str(len(items)).encode(),
            b',"next_cursor":"',
            cursor.encode(),
            b'","has_more":',
            b"true" if more else b"false",
            b',"data_age_s":',
            str(seconds(age_s)).encode(),
            b"}",
        )
    )
    etag = weak_etag(tuple(model.records[c.slot].tag for c in changes), next_points, next_status, more)
    return body, etag
