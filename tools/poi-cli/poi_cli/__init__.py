"""poi_cli package."""
