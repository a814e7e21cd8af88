"""Reports: operators say whether a point is open."""
