"""Nearest, map box and text search over the read model, answered as JSON bytes assembled from cached pieces."""

from dataclasses import dataclass

import numpy as np

from poi_search.catalog.models import BoxQuery, FilterQuery, NearestParams, NearestQuery, TextQuery
from poi_search.catalog.readmodel import Filters, ReadModel
from poi_search.catalog.records import (
    CATEGORY_BITS,
    FREE,
    POWER_ON,
    SERVICE_BITS,
    STATE_BITS,
    VISIBLE,
)
from poi_search.http import seconds, weak_etag
from poi_shared.contracts import OpenState, Service


@dataclass(frozen=True, slots=True)
class Answer:
    """A JSON body and its weak ETag (equal bodies but for ages and data age share one)."""

    body: bytes
    etag: str


def filters_of(
    query: FilterQuery | NearestParams, *, now: float, open_max_age_s: float, katotth: str | None = None
) -> Filters:
    """The read model's filters for a query's parameters."""
    required = VISIBLE
    for service in query.service:
        required |= SERVICE_BITS[service]
    if query.wheelchair:
        required |= SERVICE_BITS[Service.wheelchair_accessible]
    if query.mother_child:
        required |= SERVICE_BITS[Service.mother_child]
    if query.free_places:
        required |= FREE
    if query.power_on:
        required |= POWER_ON
    if query.open_now:
        required |= STATE_BITS[OpenState.open]
    return Filters(
        required=required,
        states=sum(STATE_BITS[s] for s in set(query.state)),
        categories=sum(CATEGORY_BITS[c] for c in set(query.category)),
        reported_since=now - open_max_age_s if query.open_now else None,
        katotth=katotth,
    )


def nearest(
    model: ReadModel,
    query: NearestQuery | NearestParams,
    *,
    limit: int,
    radius_m: float,
    filters: Filters,
    now: float,
    age_s: float,
) -> Answer:
    """The matching points nearest to the query's place, nearest first."""
    slots, metres = model.nearest(query.lat, query.lon, limit=limit, radius_m=radius_m, filters=filters)
    return _answer(model, slots, metres=metres, scores=None, now=now, age_s=age_s)


def within(model: ReadModel, query: BoxQuery, *, limit: int, filters: Filters, now: float, age_s: float) -> Answer:
    """The matching points in the box, at most limit, nearest its centre first."""
    slots, matched = model.within(query.box(), filters=filters, limit=limit)
    return _answer(model, slots, metres=None, scores=None, now=now, age_s=age_s, matched=matched)


def search_text(
    model: ReadModel, query: TextQuery, *, limit: int, filters: Filters, now: float, age_s: float
) -> Answer:
    """The points best matching the words, best first; nearer first among similar ones when a place is given."""
    near = (query.lat, query.lon) if query.lat is not None and query.lon is not None else None
    slots, scores, metres = model.search_text(query.q, filters=filters, limit=limit, near=near)
    return _answer(model, slots, metres=metres, scores=scores, now=now, age_s=age_s)


def _answer(
    model: ReadModel,
    slots: np.ndarray,
    *,
    metres: np.ndarray | None,
    scores: np.ndarray | None,
    now: float,
    age_s: float,
    matched: int | None = None,
) -> Answer:
    """The answer's JSON: each item from its record's pieces, with the status's age and the extra fields."""
    records = model.records
    picked = [records[s] for s in slots.tolist()]
    distances = [round(m) for m in metres.tolist()] if metres is not None else []
    marks = [round(float(s), 1) for s in scores.tolist()] if scores is not None else []
    items = []
    for n, record in enumerate(picked):
        reported = record.reported_at
        age = b"null" if reported != reported else b"%d" % max(0, int(now - reported))  # NaN: no status
        extra = b',"distance_m":%d' % distances[n] if distances else b""
        if marks:
            extra += b',"score":' + repr(marks[n]).encode()
        items.append(b"".join((record.head, age, record.tail, extra, b"}")))
    tail = b',"count":%d' % len(items)
    if matched is not None:
        tail += b',"matched":%d' % matched
    body = b'{"items":[' + b",".join(items) + b"]" + tail + b',"data_age_s":' + repr(seconds(age_s)).encode() + b"}"
    return Answer(body, weak_etag(tuple(r.tag for r in picked), tuple(distances), tuple(marks), matched))
