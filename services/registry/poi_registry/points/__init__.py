"""Points: registering and reading the register."""
