"""Bulk import: every row checked first, all or nothing unless partial, idempotent by code; bad files refused."""

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from poi_cli import stack
from poi_cli.seed import import_csv, import_geojson
from poi_registry.settings import RegistrySettings
from tests.integration.registry.conftest import Bearer, new_point, point_events, published, sql, unique_katotth
from tests.integration.routes.conftest import assert_problem

pytestmark = pytest.mark.integration
HEADER = "code,name_uk,category,lat,lon,katotth,address_uk,settlement,capacity,services,schedule_kind,schedule_hours"


def rows(prefix: str, count: int, **changes: Any) -> list[dict[str, Any]]:
    """Import rows in one hromada of Kyiv, codes PREFIX-1…"""
    area = unique_katotth()[:9]
    return [
        {
            "code": f"{prefix}-{n}",
            "name_uk": f"Пункт незламності №{n}",
            "category": "state",
            "host_type": "school",
            "lat": 50.45 + n / 1000,
            "lon": 30.52,
            "katotth": f"{area}{n:010d}",
            "address_uk": f"вул. Садова, {n}, Київ",
            "settlement": "Київ",
            "capacity": 100 + n,
            "services": ["heat", "charging"],
            "schedule": {"kind": "weekly", "hours": [{"days": ["mon", "fri"], "opens": "08:00", "closes": "20:00"}]},
            "contact_phone": "+380501234567",
            **changes,
        }
        for n in range(1, count + 1)
    ]


def send(registry: TestClient, body: bytes | str, headers: dict[str, str], media: str = "text/csv", **params: Any):
    return registry.post("/v1/points/import", content=body, params=params, headers={**headers, "content-type": media})


def stored(settings: RegistrySettings, prefix: str) -> dict[str, Any]:
    """The stored points whose code starts with the prefix, by code."""
    found = sql(
        settings.database_url, "SELECT code, version, capacity, id FROM points WHERE code LIKE $1 || '-%'", prefix
    )
    return {r["code"]: r for r in found}


def events_and_history(settings: RegistrySettings) -> tuple[int, int]:
    """How many events were ever written (outbox ids only grow) and how many history entries exist."""
    counts = sql(
        settings.database_url,
        """SELECT (SELECT last_value FROM outbox_id_seq) AS events, (SELECT count(*) FROM point_history) AS history""",
    )
    return counts[0]["events"], counts[0]["history"]


def test_import_is_all_or_nothing_and_a_reimport_changes_nothing(
    registry: TestClient, bearer: Bearer, settings: RegistrySettings, infra: stack.Infrastructure
) -> None:
    admin = bearer("admin", subject="importer")
    good = rows("AON", 4)
    bad = [*good[:2], {**good[2], "lat": 0.0, "lon": 0.0}, {**good[3], "services": ["heat", "sauna"]}]
    rejected = send(registry, import_csv(bad), admin)
    problem = assert_problem(rejected, 422)
    assert "2 of 4 rows are invalid, so nothing was imported" in problem["detail"]
    locations = [e["location"] for e in problem["errors"]]
    assert locations[:2] == ["body.row.4.lat", "body.row.4.lon"] and "body.row.5.services" in locations
    assert problem["report"]["created"] == 0 and stored(settings, "AON") == {}

    report = send(registry, import_csv(good), admin)
    assert report.status_code == 200, report.text
    assert report.json() == {"rows": 4, "created": 4, "updated": 0, "unchanged": 0, "failed": 0, "errors": []}
    points = stored(settings, "AON")
    assert {c: p["version"] for c, p in points.items()} == {f"AON-{n}": 1 for n in range(1, 5)}
    published(settings.database_url)
    first = point_events(infra, settings.namespace, str(points["AON-1"]["id"]))
    assert [(t, e["version"]) for t, e in first] == [("ua.poi.point.registered.v1", 1)]
    assert first[0][1]["schedule"]["hours"][0]["days"] == ["mon", "fri"]

    # The same file again: nothing changes, nothing is emitted; the GeoJSON of the same points neither.
    before = events_and_history(settings)
    again = send(registry, import_csv(good), admin).json()
    assert (again["unchanged"], again["created"], again["updated"]) == (4, 0, 0)
    geo = send(registry, import_geojson(good), admin, "application/geo+json").json()
    assert (geo["unchanged"], geo["created"], geo["updated"]) == (4, 0, 0)
    assert events_and_history(settings) == before
    assert {c: p["version"] for c, p in stored(settings, "AON").items()} == {f"AON-{n}": 1 for n in range(1, 5)}

    # One changed row: one new version, one event, one history entry naming the field.
    changed = [*good[:3], {**good[3], "capacity": 400}]
    assert send(registry, import_csv(changed), admin).json()["updated"] == 1
    published(settings.database_url)
    events = point_events(infra, settings.namespace, str(points["AON-4"]["id"]))
    assert [(t, e["version"], e["capacity"]) for t, e in events][-1] == ("ua.poi.point.updated.v1", 2, 400)
    history = registry.get(f"/v1/points/{points['AON-4']['id']}/history", headers=admin).json()["items"][0]
    assert (history["reason"], history["changed_by"]) == ("import", "importer")
    assert history["changes"] == [{"field": "capacity", "old": 104, "new": 400}]


def test_partial_import_keeps_the_valid_rows(registry: TestClient, bearer: Bearer, settings: RegistrySettings) -> None:
    good = rows("PRT", 3)
    body = import_csv([good[0], {**good[1], "capacity": 0}, good[2]])
    report = send(registry, body, bearer("admin"), partial="true").json()
    assert (report["created"], report["failed"], report["rows"]) == (2, 1, 3)
    assert report["errors"] == [
        {
            "row": 3,
            "column": "capacity",
            "message": "Input should be greater than or equal to 1",
            "type": "greater_than_equal",
        }
    ]
    assert set(stored(settings, "PRT")) == {"PRT-1", "PRT-3"}


def test_columns_a_file_leaves_out_keep_their_values(
    registry: TestClient, bearer: Bearer, settings: RegistrySettings
) -> None:
    admin = bearer("admin")
    [row] = rows("KEEP", 1)
    send(registry, import_csv([row]), admin)
    point_id = stored(settings, "KEEP")["KEEP-1"]["id"]
    # Only the required columns: capacity changes, and what the file leaves out stays as it was.
    cells = ["KEEP-1", row["name_uk"], "state", str(row["lat"]), "30.52", row["katotth"], f'"{row["address_uk"]}"']
    csv = f"{HEADER.rsplit(',', 3)[0]}\n{','.join(cells)},Київ,150\n"
    assert send(registry, csv, admin).json()["updated"] == 1
    view = registry.get(f"/v1/points/{point_id}", headers=admin).json()
    assert (
        view["capacity"] == 150
        and view["contact_phone"] == "+380501234567"
        and view["services"] == ["charging", "heat"]
    )
    assert view["schedule"]["kind"] == "weekly"


def test_coordinators_import_only_inside_their_area(
    registry: TestClient, bearer: Bearer, settings: RegistrySettings
) -> None:
    good = rows("SCOPE", 2)
    area = good[0]["katotth"][:9]
    mixed = [good[0], {**good[1], "katotth": "UA46000000000000001", "lat": 49.84, "lon": 24.03}]
    forbidden = send(registry, import_csv(mixed), bearer("coordinator", katotth=[area]), partial="true")
    problem = assert_problem(forbidden, 403)
    assert problem["errors"][0]["location"] == "body.row.3.katotth" and stored(settings, "SCOPE") == {}
    assert send(registry, import_csv(good), bearer("coordinator", katotth=[area])).json()["created"] == 2
    # An existing point outside the area cannot be taken over by code either.
    other = bearer("coordinator", katotth=["UA46"])
    takeover = [{**good[0], "katotth": "UA46000000000000001", "lat": 49.84, "lon": 24.03}]
    assert assert_problem(send(registry, import_csv(takeover), other), 403)["errors"][0]["column"] == "code"


def test_codes_are_checked(registry: TestClient, bearer: Bearer) -> None:
    admin = bearer("admin")
    registered = new_point(registry, bearer)  # a registry code, 80-000123
    [row] = rows("CODE", 1)
    twice = send(registry, import_csv([row, {**row, "name_uk": "Інша назва"}]), admin)
    assert "also on row 2" in assert_problem(twice, 422)["errors"][0]["message"]
    invented = send(registry, import_csv([{**row, "code": "80-999999"}]), admin)
    assert assert_problem(invented, 422)["errors"][0]["type"] == "registry_code"
    lower = send(registry, import_csv([{**row, "code": "code 1"}]), admin)
    assert assert_problem(lower, 422)["errors"][0]["location"] == "body.row.2.code"
    # A registry code that exists matches its point: an export-edit-import round trip updates it.
    known = {**row, "code": registered["code"], "katotth": registered["katotth"]}
    assert send(registry, import_csv([known]), admin).json()["updated"] == 1


BAD_FILES = {
    "cp1251": ("text/csv", (HEADER + "\nX-1,Київ").encode("cp1251"), 422, "body", "not UTF-8"),
    "missing-columns": ("text/csv", "code,name_uk\nX-1,Пункт\n", 422, "body.header", "missing columns: category"),
    "unknown-column": ("text/csv", HEADER + ",wifi\n", 422, "body.header", "unknown columns: wifi"),
    "empty": ("text/csv", "", 422, "body", "empty"),
    "broken-quote": ("text/csv", HEADER + '\nX-1,"Пункт,state\n', 422, "body.row.2", "row 2"),
    "quoted-newline": (
        "text/csv",
        HEADER + '\nX-1,"Пункт\nнезламності",state,50.45,30.52,UA80000000000093317,"вул. Х, 1",Київ,10,,,\n',
        422,
        "body.row.2.name_uk",
        "control character",
    ),
    "short-row": ("text/csv", HEADER + "\nX-1,Пункт,state\n", 422, "body.row.2", "has 3 cells, the header 12"),
    "bad-hours": (
        "text/csv",
        HEADER + '\nX-1,Пункт,state,50.45,30.52,UA80000000000093317,"вул. Х, 1",Київ,10,heat,weekly,every day\n',
        422,
        "body.row.2.schedule_hours",
        "not like",
    ),
    "not-json": ("application/geo+json", "{", 422, "body", "not valid JSON"),
    "not-a-collection": ("application/geo+json", '{"type": "Feature"}', 422, "body.type", "FeatureCollection"),
    "feature-without-point": (
        "application/geo+json",
        json.dumps(
            {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": None}]}
        ),
        422,
        "body.row.1.geometry",
        "coordinates",
    ),
    "wrong-media-type": ("application/json", "{}", 415, None, "text/csv or application/geo+json"),
    "hundred-thousand-rows": ("text/csv", HEADER + "\n" + "x\n" * 100_000, 413, None, "at most 2000 rows"),
    "too-many-bytes": ("text/csv", HEADER + "\n" + "x" * 3 * 1024 * 1024, 413, None, "at most 2097152 bytes"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_are_refused_naming_where(
    registry: TestClient, bearer: Bearer, settings: RegistrySettings, case: str
) -> None:
    media, body, status, location, words = BAD_FILES[case]
    before = sql(settings.database_url, "SELECT count(*) AS n FROM points")[0]["n"]
    problem = assert_problem(send(registry, body, bearer("admin"), media), status)
    assert words in problem["detail"], problem
    if location is not None:
        assert location in [e["location"] for e in problem["errors"]], problem
    assert sql(settings.database_url, "SELECT count(*) AS n FROM points")[0]["n"] == before


def test_semicolon_separated_csv_with_a_bom_reads(
    registry: TestClient, bearer: Bearer, settings: RegistrySettings
) -> None:
    [row] = rows("SEMI", 1)
    body = (
        "\ufeffcode;name_uk;category;lat;lon;katotth;address_uk;settlement;capacity;services\r\n"
        f'SEMI-1;Пункт;state;50,45;30.52;{row["katotth"]};"вул. Садова, 1, Київ";Київ;10;heat, charging\r\n'
    )
    response = send(registry, body.replace("50,45", "50.45"), bearer("admin"))
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 1 and "SEMI-1" in stored(settings, "SEMI")
