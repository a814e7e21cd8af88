"""`python -m poi_status migrate` applies the status's migrations (the pre-start step); `relay` runs its outbox
relay as a process of its own (set POI_STATUS_RELAY_IN_PROCESS=false on the API processes then)."""

import asyncio
import sys

from poi_shared import db
from poi_status.app import MIGRATIONS, run_relay
from poi_status.settings import StatusSettings

if __name__ == "__main__":
    command = sys.argv[1:]
    if command == ["migrate"]:
        print("\n".join(asyncio.run(db.migrate(StatusSettings().database_url, MIGRATIONS))) or "up to date")
    elif command == ["relay"]:
        asyncio.run(run_relay(StatusSettings()))
    else:
        sys.exit("usage: python -m poi_status migrate | relay")
