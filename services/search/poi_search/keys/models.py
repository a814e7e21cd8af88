"""What an admin sends and receives about integrator keys, and what is stored of each."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from poi_shared.models import Line, RequestModel

KEY_ID_PATTERN = r"^[0-9a-f]{12}$"
MAX_RATE_LIMIT = 10_000_000


class KeyCreate(RequestModel):
    """A key to issue to an integrator."""

    name: Line = Field(min_length=2, max_length=100, description="Who the key is for, e.g. Diia.")
    rate_limit: int | None = Field(
        default=None,
        ge=1,
        le=MAX_RATE_LIMIT,
        description="Requests per rate-limit window; the integrator default when left out.",
    )


class KeyRecord(BaseModel):
    """What is stored of a key: its hash, never the key."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=KEY_ID_PATTERN)
    name: str
    key_sha256: str
    rate_limit: int | None = None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None


class KeyView(BaseModel):
    """A key as an admin sees it later: everything but the key itself."""

    id: str = Field(description="Public id: the key's second part (poik_<id>_<secret>).")
    name: str
    rate_limit: int | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    revoked_by: str | None


class IssuedKey(KeyView):
    """A new key: the only time the key itself is shown."""

    key: str = Field(description="Send it as the X-API-Key header. Stored only as a hash: it cannot be shown again.")


class KeyList(BaseModel):
    """Every key, active and revoked."""

    items: list[KeyView]
