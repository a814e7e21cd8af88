"""Integrator API keys: issued and revoked by an admin, stored hashed, watched by every replica."""
