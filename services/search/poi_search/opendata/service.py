"""GeoJSON, CSV and OGC API – Features documents built from the read model's pieces.

Full exports cost a pass over every point and a compression, so each is built at most every export_max_age_s and
shared by every request meanwhile; the pass over the model runs on the event loop (it must not see the model
change half-way), the join and the compression in a thread.
"""

import asyncio
import csv
import gzip
import io
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import orjson

from poi_search.catalog.readmodel import Box, Filters, ReadModel
from poi_search.opendata.models import CONFORMANCE, CRS84

CSV_COLUMNS = (
    "id",
    "code",
    "name_uk",
    "name_en",
    "category",
    "host_type",
    "katotth",
    "settlement",
    "address_uk",
    "lon",
    "lat",
    "exact_location",
    "services",
    "capacity",
    "free_places",
    "state",
    "reported_at",
    "power",
    "operator_org",
    "public_phone",
)


@dataclass(frozen=True)
class Export:
    """A built export, plain and gzipped, with its ETag."""

    body: bytes
    gzipped: bytes
    etag: str
    built_at: float


@dataclass
class ExportCache:
    """The latest export of each kind; one build at a time per kind."""

    exports: dict[str, Export] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def get(
        self, kind: str, *, max_age_s: float, pieces: Callable[[], list[bytes]], join: Callable[[list[bytes]], bytes]
    ) -> Export:
        """The export of that kind, rebuilt first if older than max_age_s."""
        lock = self.locks.setdefault(kind, asyncio.Lock())
        async with lock:
            held = self.exports.get(kind)
            if held is not None and time.monotonic() - held.built_at < max_age_s:
                return held
            parts = pieces()
            self.exports[kind] = export = await asyncio.to_thread(_build, parts, join)
            return export


def _build(parts: list[bytes], join: Callable[[list[bytes]], bytes]) -> Export:
    body = join(parts)
    etag = f'"{zlib.crc32(body):08x}-{len(body):x}"'
    return Export(body, gzip.compress(body, compresslevel=6, mtime=0), etag, time.monotonic())


def feature(model: ReadModel, slot: int, now: float) -> bytes:
    """A visible point as a GeoJSON Feature: [lon, lat] as the public sees it, the query item as properties."""
    record = model.records[slot]
    lat, lon = model.position(slot)
    return b"".join(
        (
            b'{"type":"Feature","id":"',
            record.id.encode(),
            b'","geometry":{"type":"Point","coordinates":[',
            repr(lon).encode(),
            b",",
            repr(lat).encode(),
            b']},"properties":',
            record.item(record.age(now), b""),
            b"}",
        )
    )


def features(model: ReadModel, slots: np.ndarray, now: float) -> list[bytes]:
    """The Features of these slots."""
    return [feature(model, s, now) for s in slots.tolist()]


def feature_collection(parts: list[bytes], extra: bytes = b"") -> bytes:
    """A GeoJSON FeatureCollection of pre-serialised features, with extra members."""
    return b'{"type":"FeatureCollection","features":[' + b",".join(parts) + b"]" + extra + b"}"


def csv_rows(model: ReadModel, now: float) -> list[bytes]:
    """Every visible point's properties, one JSON object each (turned into CSV rows off the event loop)."""
    return [model.records[s].item(model.records[s].age(now), b"") for s in model.visible_slots().tolist()]


def csv_table(items: list[bytes]) -> bytes:
    """A CSV table, with a header, of the points' properties."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for raw in items:
        item = orjson.loads(raw)
        status = item["status"]
        writer.writerow(
            (
                item["id"],
                item["code"],
                item["name_uk"],
                item["name_en"] or "",
                item["category"],
                item["host_type"],
                item["katotth"],
                item["settlement"],
                item["address_uk"],
                item["lon"],
                item["lat"],
                "true" if item["exact_location"] else "false",
                " ".join(item["services"]),
                item["capacity"],
                "" if item["free_places"] is None else item["free_places"],
                status["state"],
                status["reported_at"] or "",
                status["power"] or "",
                item["operator_org"] or "",
                item["public_phone"] or "",
            )
        )
    return out.getvalue().encode()


def landing_page(base: str) -> dict[str, object]:
    """The OGC API landing page."""
    root = f"{base}/v1/ogc"
    return {
        "title": "Points of Invincibility",
        "description": "Every public Point of Invincibility with its live status, as OGC API – Features.",
        "links": [
            {"href": f"{root}/", "rel": "self", "type": "application/json", "title": "This document"},
            {
                "href": f"{base}/openapi.json",
                "rel": "service-desc",
                "type": "application/vnd.oai.openapi+json;version=3.0",
                "title": "The API definition (OpenAPI 3.1)",
            },
            {"href": f"{base}/docs", "rel": "service-doc", "type": "text/html", "title": "The API documentation"},
            {"href": f"{root}/conformance", "rel": "conformance", "type": "application/json", "title": "Conformance"},
            {"href": f"{root}/collections", "rel": "data", "type": "application/json", "title": "Collections"},
        ],
    }


def conformance() -> dict[str, object]:
    """The conformance classes."""
    return {"conformsTo": CONFORMANCE}


def collection(base: str, extent: Box | None) -> dict[str, object]:
    """The points collection's description."""
    root = f"{base}/v1/ogc/collections/points"
    bbox = [extent.west, extent.south, extent.east, extent.north] if extent else [-180.0, -90.0, 180.0, 90.0]
    return {
        "id": "points",
        "title": "Points of Invincibility",
        "description": "Places that stay warm, lit and connected in a blackout, with their live status.",
        "itemType": "feature",
        "crs": [CRS84],
        "extent": {"spatial": {"bbox": [bbox], "crs": CRS84}},
        "links": [
            {"href": root, "rel": "self", "type": "application/json", "title": "This collection"},
            {"href": f"{root}/items", "rel": "items", "type": "application/geo+json", "title": "The points"},
        ],
    }


def items_page(
    model: ReadModel,
    *,
    filters: Filters,
    box: Box | None,
    after: str | None,
    limit: int,
    now: float,
    self_url: str,
    next_url: Callable[[str], str],
) -> tuple[bytes, tuple[object, ...]]:
    """A page of the collection as a GeoJSON FeatureCollection with OGC's members; and its ETag parts."""
    slots, matched, more = model.page_by_id(filters=filters, box=box, after=after, limit=limit)
    links = [{"href": self_url, "rel": "self", "type": "application/geo+json", "title": "This page"}]
    if more:
        last = model.records[int(slots[-1])].id
        links.append({"href": next_url(last), "rel": "next", "type": "application/geo+json", "title": "Next page"})
    extra = b',"numberMatched":%d,"numberReturned":%d,"links":' % (matched, len(slots)) + orjson.dumps(links)
    tags = tuple(model.records[s].tag for s in slots.tolist())
    return feature_collection(features(model, slots, now), extra), (tags, matched, more)
