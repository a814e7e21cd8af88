"""Registry settings, from POI_REGISTRY_* variables."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from poi_shared.settings import DatabaseServiceSettings


class RegistrySettings(DatabaseServiceSettings):
    """The registry owns the points database."""

    model_config = SettingsConfigDict(env_prefix="POI_REGISTRY_", extra="ignore")

    database_url: str = "postgresql://postgres@127.0.0.1:5432/poi_registry"
    # A bulk import is one request: room for the planned 17,000 points (7.6 MiB of CSV, 14 MiB of GeoJSON), never
    # an unbounded body; the bytes match the Ingress's proxy-body-size.
    import_max_rows: int = Field(default=20_000, ge=1)
    import_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    idempotency_ttl_s: float = Field(default=24 * 3600.0, gt=0)
    list_max_limit: int = Field(default=500, ge=1)
    # An oblast policy changes this many points per transaction, so a big oblast never holds locks for long.
    policy_batch_size: int = Field(default=1000, ge=1)
