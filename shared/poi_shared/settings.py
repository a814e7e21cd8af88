"""Settings read from the environment; each service subclasses ServiceSettings with its own prefix."""

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

NAMESPACE_PATTERN = r"^[a-z][a-z0-9]{0,15}$"


class ServiceSettings(BaseSettings):
    """What every service needs: the broker, the event namespace, startup and logging."""

    model_config = SettingsConfigDict(extra="ignore")

    nats_url: str = "nats://127.0.0.1:4222"
    # Prefixes stream names, subjects and Redis keys, so several stacks can share one server.
    namespace: str = Field(default="poi", pattern=NAMESPACE_PATTERN)
    startup_timeout_s: float = Field(default=60.0, gt=0)
    log_level: str = "INFO"


class DatabaseServiceSettings(ServiceSettings):
    """A service that owns a PostgreSQL database."""

    database_url: str
    db_pool_max: int = Field(default=10, ge=2)
    # Waiting longer for a pooled connection means the database is down or the pool exhausted: answer 503.
    db_acquire_timeout_s: float = Field(default=5.0, gt=0)


class AuthSettings(BaseSettings):
    """How bearer tokens are verified; the same identity provider serves every service."""

    model_config = SettingsConfigDict(env_prefix="POI_AUTH_", extra="ignore")

    # HS256 shared secret: development only (the `poi token` command signs with it).
    secret: SecretStr | None = None
    # Production: a PEM public key, or the identity provider's JWKS URL.
    public_key: str | None = None
    jwks_url: str | None = None
    issuer: str = "poi-dev"
    audience: str = "poi"
    leeway_s: int = 30
