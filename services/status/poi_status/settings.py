"""Status settings, from POI_STATUS_* variables."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from poi_shared.contracts import PointCategory
from poi_shared.settings import DatabaseServiceSettings

HOUR_S = 3600.0


class StatusSettings(DatabaseServiceSettings):
    """Status keeps history in PostgreSQL and the current state in Redis."""

    model_config = SettingsConfigDict(env_prefix="POI_STATUS_", extra="ignore")

    database_url: str = "postgresql://postgres@127.0.0.1:5432/poi_status"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # The bound on staleness: a read never shows a version older than one committed this long ago.
    cache_ttl_s: float = Field(default=30.0, gt=0)

    # Fuel left under this many hours makes a point low on fuel (a flag, a list, and a low_fuel event).
    low_fuel_hours: float = Field(default=6.0, ge=0)
    # A confirmation that changes nothing is published only if the last published one is at least this old.
    confirm_event_interval_s: float = Field(default=180.0, ge=0)
    # An open or full point that has not reported for this long (per category) is downgraded to unknown.
    stale_after_state_s: float = Field(default=3 * HOUR_S, gt=0)
    stale_after_business_s: float = Field(default=6 * HOUR_S, gt=0)
    stale_after_essential_s: float = Field(default=6 * HOUR_S, gt=0)
    stale_check_interval_s: float = Field(default=60.0, gt=0)
    stale_batch: int = Field(default=1000, ge=1, le=10_000)
    # Idempotency keys are kept this long: a retry later than that is a new report.
    idempotency_retention_s: float = Field(default=24 * HOUR_S, ge=60)
    # Reports arriving together are written together: a batch takes at most this many (one per point), and this
    # many batches are written at once (each holds a connection while it is written).
    report_batch_max: int = Field(default=100, ge=1, le=1000)
    report_batches_in_flight: int = Field(default=1, ge=1, le=16)
    # The outbox relay runs in the API process unless it runs on its own (`python -m poi_status relay`).
    relay_in_process: bool = True

    # The live feed: how far back a resuming client is replayed, and how often idle streams get a heartbeat.
    feed_replay_max: int = Field(default=10_000, ge=0)
    feed_heartbeat_s: float = Field(default=15.0, gt=0)
    # Coordinators' list pages and the public read of many points at once.
    max_page: int = Field(default=200, ge=1)
    max_ids: int = Field(default=100, ge=1)

    def stale_after_s(self, category: PointCategory) -> float:
        """How long a point of the category may go without a report before it is downgraded."""
        return {
            PointCategory.state: self.stale_after_state_s,
            PointCategory.business: self.stale_after_business_s,
            PointCategory.essential: self.stale_after_essential_s,
        }[category]
