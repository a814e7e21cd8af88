"""Areas: coordinators switch the on-blackout points of their areas on and off."""
