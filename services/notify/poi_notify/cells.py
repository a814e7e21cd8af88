"""H3 cells for area subscriptions: a disk is indexed by the cells covering it, a point by its one cell."""

import math

import h3

# Resolution 7: cells about 1.2 km across, so a 10 km radius is a few hundred cells and a point is one lookup.
RESOLUTION = 7
_EDGE_M = h3.average_hexagon_edge_length(RESOLUTION, unit="m")


def cell_of(lat: float, lon: float) -> int:
    """The cell a point lies in."""
    return h3.str_to_int(h3.latlng_to_cell(lat, lon, RESOLUTION))


def cells_covering(lat: float, lon: float, radius_m: float) -> list[int]:
    """Every cell any part of the disk can fall in (a superset: callers check the exact distance)."""
    # Cell centres are about 1.73 edges apart; one extra ring covers the parts of cells the disk only grazes.
    rings = math.ceil(radius_m / (_EDGE_M * math.sqrt(3))) + 1
    centre = h3.latlng_to_cell(lat, lon, RESOLUTION)
    return sorted(h3.str_to_int(cell) for cell in h3.grid_disk(centre, rings))
