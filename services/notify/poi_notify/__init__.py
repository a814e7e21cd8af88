"""poi_notify package."""
