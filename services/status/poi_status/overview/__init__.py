"""Overview: coordinators' lists of points needing attention, and statistics."""
