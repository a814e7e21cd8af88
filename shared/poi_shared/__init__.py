"""poi_shared package."""
