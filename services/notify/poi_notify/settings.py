"""Notify settings, from POI_NOTIFY_* variables."""

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from poi_shared.settings import DatabaseServiceSettings


class NotifySettings(DatabaseServiceSettings):
    """Notify owns subscriptions, messages and deliveries in PostgreSQL; rate limits live in Redis."""

    model_config = SettingsConfigDict(env_prefix="POI_NOTIFY_", extra="ignore")

    database_url: str = "postgresql://postgres@127.0.0.1:5432/poi_notify"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # The HMAC key that turns a phone number into the phone_hash logs, metrics and exports name it by.
    # From the environment only (a Secret in Kubernetes; `poi run` derives one from its development secret).
    # Required to serve; migrations and the OpenAPI document do without it.
    phone_key: SecretStr | None = None
