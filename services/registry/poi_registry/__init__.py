"""poi_registry package."""
