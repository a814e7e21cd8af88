"""Bulk import and export of the register (CSV and GeoJSON)."""
