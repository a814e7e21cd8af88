"""Open data: every public point as GeoJSON and CSV, and through OGC API – Features."""
