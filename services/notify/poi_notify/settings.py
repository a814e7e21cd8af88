"""Notify settings, from POI_NOTIFY_* variables."""

from pydantic_settings import SettingsConfigDict

from poi_shared.settings import DatabaseServiceSettings


class NotifySettings(DatabaseServiceSettings):
    """Notify owns subscriptions and deliveries in PostgreSQL."""

    model_config = SettingsConfigDict(env_prefix="POI_NOTIFY_", extra="ignore")

    database_url: str = "postgresql://postgres@127.0.0.1:5432/poi_notify"
