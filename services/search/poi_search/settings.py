"""Search settings, from POI_SEARCH_* variables."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from poi_shared.settings import ServiceSettings


class SearchSettings(ServiceSettings):
    """Search keeps no durable data of its own: its read model is rebuilt from the streams on start."""

    model_config = SettingsConfigDict(env_prefix="POI_SEARCH_", extra="ignore")

    # Caps on public queries.
    max_radius_km: float = Field(default=200.0, gt=0)
    max_limit: int = Field(default=50, ge=1, le=1000)
    max_box_limit: int = Field(default=1000, ge=1, le=10_000)
    max_page_limit: int = Field(default=10_000, ge=1, le=100_000)
    max_query_bytes: int = Field(default=2048, ge=256, description="Longer query strings get 414.")
    # "Open now": state open and confirmed within this many seconds.
    open_max_age_s: float = Field(default=3 * 3600.0, gt=0)

    # HTTP caching and compression.
    cache_max_age_s: int = Field(default=5, ge=0, description="Cache-Control max-age of query answers.")
    export_max_age_s: int = Field(default=30, ge=0, description="How often full exports are rebuilt, at most.")
    gzip_min_bytes: int = Field(default=1400, ge=0, description="Larger answers are gzipped for clients that ask.")
    cors_origins: list[str] = Field(default=["*"], description="Browser origins allowed to read (GET only).")

    # The spatial index takes live updates in a brute-force delta, merged on this timer or once this large.
    index_merge_s: float = Field(default=0.5, gt=0)
    index_delta_max: int = Field(default=1024, ge=1)

    # Rate limits per window: anonymous clients by IP; integrators by key or token (a key may carry its own).
    # Generous per IP: mobile carriers put many subscribers behind one address (CGNAT), all of them in a blackout.
    redis_url: str = "redis://127.0.0.1:6379/0"
    rate_limit_window_s: int = Field(default=60, ge=1, le=3600)
    rate_limit_ip: int = Field(default=1200, ge=1)
    rate_limit_integrator: int = Field(default=60_000, ge=1)
    # Each replica counts locally and adds its counts to Redis this often (one round trip for every client).
    rate_limit_sync_s: float = Field(default=0.2, gt=0)
