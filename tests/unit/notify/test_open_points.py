"""The flusher's vectorised nearest open points agree with a brute-force scan using the exact distance."""

import random

import numpy as np

from poi_notify import cells
from poi_notify.alerts.service import OpenPoints, distance_m

SERVICES = ("heat", "charging", "water", "internet")


def test_nearest_many_matches_a_brute_force_scan_on_random_data() -> None:
    rng = random.Random(9)
    points = []
    for i in range(400):
        lat, lon = 50.45 + rng.uniform(-0.08, 0.08), 30.52 + rng.uniform(-0.12, 0.12)
        services = sorted(rng.sample(SERVICES, rng.randint(0, 3)))
        points.append(
            {"point_id": i, "version": 1, "lat": lat, "lon": lon, "cell": cells.cell_of(lat, lon), "services": services}
        )
    # A point without a public position is never named.
    points.append({"point_id": "hidden", "version": 1, "lat": None, "lon": None, "cell": None, "services": []})
    subs = [
        {
            "lat": 50.45 + rng.uniform(-0.1, 0.1),
            "lon": 30.52 + rng.uniform(-0.15, 0.15),
            "radius_m": rng.choice((500, 1000, 2000, 5000)),
            "services": rng.choice(([], ["heat"], ["charging", "water"], ["unknown"])),
        }
        for _ in range(300)
    ]
    open_points = OpenPoints(points)  # type: ignore[arg-type]
    found, distance = open_points.nearest_many(
        np.array([s["lat"] for s in subs]),
        np.array([s["lon"] for s in subs]),
        np.array([s["radius_m"] for s in subs], dtype=np.float64),
        [tuple(s["services"]) for s in subs],
        3,
    )
    for sub, near, far in zip(subs, found.tolist(), distance.tolist(), strict=True):
        got = [(d, open_points.rows[p]) for p, d in zip(near, far, strict=True) if p >= 0]
        # Past the last point found: no index and no distance.
        assert all(p < 0 and d == float("inf") for p, d in zip(near[len(got) :], far[len(got) :], strict=True))
        expected = sorted(
            (distance_m(sub["lat"], sub["lon"], p["lat"], p["lon"]), p["point_id"])
            for p in points
            if p["lat"] is not None
            and set(sub["services"]) <= set(p["services"])
            and distance_m(sub["lat"], sub["lon"], p["lat"], p["lon"]) <= sub["radius_m"]
        )[:3]
        assert [p["point_id"] for _, p in got] == [i for _, i in expected]
        assert [round(d, 3) for d, _ in got] == [round(d, 3) for d, _ in expected]
    assert (found[:, 0] >= 0).any() and not (found[:, 0] >= 0).all()
