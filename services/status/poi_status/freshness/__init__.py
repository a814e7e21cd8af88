"""Freshness: points that stop reporting are downgraded to unknown."""
