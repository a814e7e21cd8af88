"""The live feed: status changes as Server-Sent Events, for maps and integrators."""
