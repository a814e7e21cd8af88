"""The one visibility policy every public read applies: hidden points never shown, coarse ones only roughly."""

from dataclasses import dataclass

from poi_shared.contracts import PointState, Visibility

COARSE_DECIMALS = 2  # about 1 km


@dataclass(frozen=True, slots=True)
class PublicPlace:
    """Where the public may see a point: exact, or rounded with the settlement instead of the address."""

    lat: float
    lon: float
    address_uk: str
    address_en: str | None
    exact: bool


def public_place(point: PointState) -> PublicPlace | None:
    """The point's place as the public sees it; None for a hidden point."""
    if point.visibility == Visibility.hidden:
        return None
    if point.visibility == Visibility.coarse:
        lat, lon = round(point.lat, COARSE_DECIMALS), round(point.lon, COARSE_DECIMALS)
        return PublicPlace(lat, lon, point.settlement, None, exact=False)
    return PublicPlace(point.lat, point.lon, point.address_uk, point.address_en, exact=True)
