"""Observations: the status events notify has seen, for ops to inspect."""
