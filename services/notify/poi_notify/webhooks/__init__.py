"""Signed webhooks for integrators: endpoints, filters, deliveries with retries, dead letters and replay."""
