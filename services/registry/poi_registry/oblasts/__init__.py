"""Oblasts: where each lies (for the location check) and the visibility policy an admin sets for each."""
