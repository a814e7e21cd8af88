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
    # Copies of every stream across the NATS cluster: 1 for one server (development), 3 in production, where a
    # lost server's disk must not lose what was published.
    stream_replicas: int = Field(default=1, ge=1, le=5)
    startup_timeout_s: float = Field(default=60.0, gt=0)
    log_level: str = "INFO"

    # Durable consumers: how many messages a fetch takes, how long the broker waits for an ack before it
    # redelivers (the runner keeps messages in hand alive meanwhile), and the backoff between retries.
    consumer_batch: int = Field(default=64, ge=1, le=1000)
    consumer_ack_wait_s: float = Field(default=30.0, ge=1)
    consumer_retry_initial_s: float = Field(default=0.5, gt=0)
    consumer_retry_max_s: float = Field(default=30.0, gt=0)
    # A handler failing this many times in a row with an unexpected error dead-letters the message; a dependency
    # outage (database, cache, broker) never counts, however long it lasts.
    consumer_poison_budget: int = Field(default=5, ge=1)
    publish_timeout_s: float = Field(default=5.0, gt=0)


class DatabaseServiceSettings(ServiceSettings):
    """A service that owns a PostgreSQL database."""

    database_url: str
    db_pool_max: int = Field(default=10, ge=2)
    # Waiting longer for a pooled connection means the database is down or the pool exhausted: answer 503.
    db_acquire_timeout_s: float = Field(default=5.0, gt=0)
    # The outbox relay publishes at most this many messages per batch, and gives up on a batch after this long
    # (what was acknowledged is deleted, the rest is published again).
    outbox_batch: int = Field(default=500, ge=1, le=10_000)
    outbox_batch_timeout_s: float = Field(default=10.0, gt=0)
    # Woken by a commit, the relay waits this long for more before it reads a batch: a few milliseconds of latency
    # buy batches of many messages under load instead of a read and a delete per message.
    outbox_linger_s: float = Field(default=0.01, ge=0, le=1)
    # A relay is woken at once by commits in its own process; rows committed by other processes (another replica,
    # or the API when the relay runs on its own) wait at most this long before it reads them.
    outbox_poll_s: float = Field(default=0.05, gt=0, le=5)
    # Inbox rows must outlive every redelivery or republish of their event. The broker de-duplicates only within
    # its 2-minute window, but a relay that could not delete what it published (database down right after the
    # broker acked) publishes again once the database is back, which can be hours later; a week covers that.
    inbox_retention_s: float = Field(default=7 * 24 * 3600.0, ge=3600)
    inbox_prune_interval_s: float = Field(default=600.0, gt=0)
    inbox_prune_batch: int = Field(default=5000, ge=1)


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
