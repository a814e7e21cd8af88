"""Subscriptions: a number subscribes to a point or an area, confirms with a code, and can leave."""
