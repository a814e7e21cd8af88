"""The national dataset as an import file, and loading it through the registry's own import (one import path)."""

import csv
import io
import json
from pathlib import Path

from poi_cli.demo import DEMO_POLICIES, national_register
from poi_registry import data as registry_data
from poi_registry.bulk import formats
from poi_registry.bulk.models import ImportReport
from poi_registry.bulk.service import import_points
from poi_registry.oblasts.service import set_oblast_policy
from poi_registry.settings import RegistrySettings
from poi_shared import db
from poi_shared.auth import Principal, Role
from poi_shared.contracts import Visibility

SEED_CALLER = Principal(subject="poi-seed", roles=frozenset({Role.admin}))
"""Who the register's history names for seeded points."""


def import_csv(points: list[dict[str, object]]) -> bytes:
    """Points (with codes) as the registry's import CSV: the documented columns, services and hours packed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(formats.IMPORT_COLUMNS)
    for point in points:
        schedule, services = point.get("schedule") or {}, point.get("services") or []
        assert isinstance(schedule, dict) and isinstance(services, list)
        hours = "; ".join(f"{','.join(h['days'])} {h['opens']}-{h['closes']}" for h in schedule.get("hours", []))
        flat = {
            **point,
            "services": ";".join(services),
            "schedule_kind": schedule.get("kind"),
            "schedule_hours": hours,
            "schedule_note": schedule.get("note"),
        }
        writer.writerow(["" if flat.get(c) is None else flat[c] for c in formats.IMPORT_COLUMNS])
    return buffer.getvalue().encode()


def import_geojson(points: list[dict[str, object]]) -> bytes:
    """Points (with codes) as the registry's import GeoJSON: a FeatureCollection, [lon, lat]."""
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [p["lon"], p["lat"]]},
            "properties": {k: v for k, v in p.items() if k not in ("lat", "lon")},
        }
        for p in points
    ]
    return json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False).encode()


def write_dataset(path: Path, *, count: int) -> int:
    """Write the national dataset as CSV, or GeoJSON for a .geojson or .json file; returns how many points."""
    points = national_register(count)
    body = import_geojson(points) if path.suffix in (".geojson", ".json") else import_csv(points)
    path.write_bytes(body)
    return len(points)


async def seed_points(
    registry_database_url: str, *, namespace: str, count: int, only_if_empty: bool
) -> ImportReport | None:
    """Load the national dataset through the registry's import, after its oblast policies; None if skipped.

    Codes match rows to points, so seeding again changes nothing; with only_if_empty, a register that holds
    points is left alone.
    """
    settings = RegistrySettings(database_url=registry_database_url, namespace=namespace)
    pool = await db.create_pool(registry_database_url, timeout_s=settings.startup_timeout_s, min_size=1, max_size=2)
    try:
        async with db.connection(pool) as conn:
            if only_if_empty and await registry_data.count_points(conn) > 0:
                return None
        # Policies first, so the points are registered with their effective visibility at version 1.
        for oblast, visibility in DEMO_POLICIES.items():
            await set_oblast_policy(
                pool,
                oblast=oblast,
                visibility=Visibility(visibility),
                caller=SEED_CALLER,
                namespace=namespace,
                batch_size=settings.policy_batch_size,
            )
        return await import_points(
            pool,
            body=import_csv(national_register(count)),
            media_type=formats.CSV,
            partial=False,
            caller=SEED_CALLER,
            namespace=namespace,
            max_rows=count,
        )
    finally:
        await pool.close()
