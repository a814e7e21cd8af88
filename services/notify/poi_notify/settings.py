"""Notify settings, from POI_NOTIFY_* variables."""

from datetime import time

from pydantic import Field, SecretStr
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

    # --- SMS: subscriptions, abuse limits, the gateway and the sender ---
    # An area subscription's largest radius: an SMS-cost attack surface, and alerts for a whole oblast help nobody.
    area_max_radius_m: int = Field(default=20_000, ge=100, le=100_000)
    max_subscriptions_per_phone: int = Field(default=20, ge=1)
    # A confirmation code's life and how many wrong tries burn it; an unconfirmed subscription is forgotten after.
    code_ttl_s: int = Field(default=900, ge=60)
    code_max_attempts: int = Field(default=5, ge=1)
    pending_ttl_s: int = Field(default=24 * 3600, ge=60)
    # Abuse limits (Redis, fixed windows): each request is counted per number, per client address and in total.
    subscribe_per_phone_per_hour: int = Field(default=5, ge=1)
    subscribe_per_ip_per_hour: int = Field(default=30, ge=1)
    subscribe_per_minute: int = Field(default=600, ge=1)
    confirm_per_phone_per_hour: int = Field(default=10, ge=1)
    confirm_per_ip_per_hour: int = Field(default=60, ge=1)
    confirm_per_minute: int = Field(default=3000, ge=1)
    # Answers to inbound SMS (help, lookups) per number: a loop with another robot must not cost much.
    replies_per_phone_per_hour: int = Field(default=10, ge=1)

    # Kannel's sendsms (http://kannel:13013); unset: the log sink, which only logs what would be sent.
    kannel_url: str | None = None
    kannel_username: SecretStr | None = None
    kannel_password: SecretStr | None = None
    sms_from: str = "POI"
    # Which delivery reports Kannel sends back (its dlr-mask): 31 every one; 19 only the final ones (1, 2, 16), half
    # the callbacks where the SMSC also reports acceptance (8); 0 none.
    sms_dlr_mask: int = Field(default=31, ge=0, le=31)
    # How Kannel reaches notify (delivery reports); its sms-service get-url points at <public_url>/v1/sms/inbound.
    gateway_callback_url: str = "http://127.0.0.1:8004"
    # The token Kannel sends with inbound SMS and delivery reports (?token=); unset: only loopback callers.
    gateway_token: SecretStr | None = None
    # The gateway's throughput (a token bucket), messages in flight, and how the sender retries a busy gateway.
    sms_rate_per_s: float = Field(default=100.0, gt=0)
    sms_concurrency: int = Field(default=32, ge=1, le=1000)
    sms_batch: int = Field(default=500, ge=1, le=10_000)
    sms_idle_poll_s: float = Field(default=0.5, gt=0)
    sms_retry_initial_s: float = Field(default=2.0, gt=0)
    sms_retry_max_s: float = Field(default=300.0, gt=0)
    sms_max_attempts: int = Field(default=10, ge=1)
    sms_send_timeout_s: float = Field(default=10.0, gt=0)
    # Delivery reports are written in batches this often; at most this many wait (the database down): then 503s.
    sms_dlr_flush_s: float = Field(default=0.05, gt=0, le=60)
    # How long a report that settles nothing (accepted, queued at the SMSC) waits for the final one before it is
    # written on its own.
    sms_dlr_hold_s: float = Field(default=1.0, ge=0, le=60)
    sms_dlr_buffer_max: int = Field(default=200_000, ge=100)
    # A message claimed longer ago than this by a process that died is marked 'unknown', never sent again.
    sms_sending_lease_s: float = Field(default=300.0, ge=30)
    # --- Alerts: windows, quiet hours, planner and flusher ---
    # Never two messages to one phone within this many seconds: changes in between are merged into one.
    alert_window_s: int = Field(default=900, ge=60, le=86_400)
    # The first change of a window waits this long for more (an area switching on is hundreds of events).
    alert_gather_s: float = Field(default=30.0, ge=0, le=600)
    # Quiet hours in Kyiv time: non-urgent news waits for their end. Equal start and end: no quiet hours.
    alert_quiet_start: time = time(22, 0)
    alert_quiet_end: time = time(7, 0)
    # How many of the nearest open points an area message names (the rest are counted).
    alert_area_points: int = Field(default=2, ge=1, le=3)
    # The planner takes what was queued every few seconds, in batches of up to alert_plan_batch changes.
    alert_plan_interval_s: float = Field(default=5.0, gt=0)
    alert_plan_batch: int = Field(default=5000, ge=1, le=50_000)
    alert_flush_interval_s: float = Field(default=2.0, gt=0)
    alert_flush_batch: int = Field(default=2000, ge=1, le=50_000)
    # Batches flushed at once, each on its own connection: one is composed while the database writes another.
    alert_flush_workers: int = Field(default=2, ge=1, le=8)

    # --- Webhooks for integrators ---
    # Development and tests only: also allow http:// and loopback addresses (never private or link-local ones).
    webhook_allow_loopback_http: bool = False
    # The whole of one delivery (connect, TLS, send, status line, capped body) must finish within this.
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=60)
    # Attempts before a delivery is dead-lettered; waits between them double from initial up to max (with jitter).
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    webhook_retry_initial_s: float = Field(default=30.0, gt=0)
    webhook_retry_max_s: float = Field(default=3600.0, gt=0)
    # An endpoint whose last this many finished deliveries all went dead is switched off (nothing more is queued
    # for it) until its integrator switches it on again.
    webhook_disable_after_dead: int = Field(default=10, ge=1, le=1000)
    # Due deliveries one pass claims, how many are in flight at once, how often an idle loop looks again.
    webhook_batch: int = Field(default=100, ge=1, le=1000)
    webhook_concurrency: int = Field(default=16, ge=1, le=256)
    webhook_poll_s: float = Field(default=1.0, gt=0)
    # Only the status code counts; at most this much of a response body is read before the connection is dropped.
    webhook_response_max_bytes: int = Field(default=4096, ge=0, le=1_048_576)
    webhook_max_per_owner: int = Field(default=20, ge=1)
    webhook_max_radius_m: int = Field(default=200_000, ge=1)
    # Delivered and dead deliveries are forgotten this long after they were queued (dead ones can be replayed until).
    webhook_retention_s: float = Field(default=30 * 24 * 3600.0, ge=3600)

    # --- SMS lookup ---
    # The search service lookups ask (nearest and text search).
    search_url: str = "http://127.0.0.1:8003"
    search_timeout_s: float = Field(default=5.0, gt=0, le=30)
    # How far from the place found a lookup looks for open points.
    lookup_radius_km: float = Field(default=25.0, gt=0, le=100)
