"""Status settings, from POI_STATUS_* variables."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from poi_shared.settings import DatabaseServiceSettings


class StatusSettings(DatabaseServiceSettings):
    """Status keeps history in PostgreSQL and the current state in Redis."""

    model_config = SettingsConfigDict(env_prefix="POI_STATUS_", extra="ignore")

    database_url: str = "postgresql://postgres@127.0.0.1:5432/poi_status"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # The bound on staleness: a read never shows a version older than one committed this long ago.
    cache_ttl_s: float = Field(default=30.0, gt=0)
