"""Points: what status knows of the register, from its events."""
