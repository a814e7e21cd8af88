"""The change feed: every change since a cursor, for integrators keeping a mirror."""
