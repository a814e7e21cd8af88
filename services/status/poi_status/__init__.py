"""poi_status package."""
