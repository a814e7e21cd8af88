"""poi_search package."""
