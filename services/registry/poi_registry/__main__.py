"""`python -m poi_registry migrate`: apply the registry's migrations (the pre-start step)."""

import asyncio
import sys

from poi_registry.app import MIGRATIONS
from poi_registry.settings import RegistrySettings
from poi_shared import db

if __name__ == "__main__":
    if sys.argv[1:] != ["migrate"]:
        sys.exit("usage: python -m poi_registry migrate")
    print("\n".join(asyncio.run(db.migrate(RegistrySettings().database_url, MIGRATIONS))) or "up to date")
