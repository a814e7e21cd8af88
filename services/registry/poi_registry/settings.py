"""Registry settings, from POI_REGISTRY_* variables."""

from pydantic_settings import SettingsConfigDict

from poi_shared.settings import DatabaseServiceSettings


class RegistrySettings(DatabaseServiceSettings):
    """The registry owns the points database."""

    model_config = SettingsConfigDict(env_prefix="POI_REGISTRY_", extra="ignore")

    database_url: str = "postgresql://postgres@127.0.0.1:5432/poi_registry"
