"""Search settings, from POI_SEARCH_* variables."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from poi_shared.settings import ServiceSettings


class SearchSettings(ServiceSettings):
    """Search keeps no durable data: its read model is rebuilt from the streams on start."""

    model_config = SettingsConfigDict(env_prefix="POI_SEARCH_", extra="ignore")

    max_radius_km: float = Field(default=200.0, gt=0)
    max_limit: int = Field(default=50, ge=1)
