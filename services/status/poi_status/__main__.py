"""`python -m poi_status migrate`: apply the status's migrations (the pre-start step)."""

import asyncio
import sys

from poi_shared import db
from poi_status.app import MIGRATIONS
from poi_status.settings import StatusSettings

if __name__ == "__main__":
    if sys.argv[1:] != ["migrate"]:
        sys.exit("usage: python -m poi_status migrate")
    print("\n".join(asyncio.run(db.migrate(StatusSettings().database_url, MIGRATIONS))) or "up to date")
