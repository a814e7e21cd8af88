"""Catalog: the in-memory read model of points and their status, and the routes that query it."""
