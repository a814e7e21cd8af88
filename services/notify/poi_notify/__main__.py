"""`python -m poi_notify migrate`: apply the notify's migrations (the pre-start step)."""

import asyncio
import sys

from poi_notify.app import MIGRATIONS
from poi_notify.settings import NotifySettings
from poi_shared import db

if __name__ == "__main__":
    if sys.argv[1:] != ["migrate"]:
        sys.exit("usage: python -m poi_notify migrate")
    print("\n".join(asyncio.run(db.migrate(NotifySettings().database_url, MIGRATIONS))) or "up to date")
