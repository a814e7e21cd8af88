"""Coordinator contacts: numbers that get ops alerts for a region."""
