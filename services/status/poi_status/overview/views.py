"""HTTP routes for coordinators' lists and statistics."""

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from poi_shared.auth import CurrentPrincipal, forbid
from poi_shared.contracts import KATOTTH_SCOPE_PATTERN
from poi_shared.errors import invalid
from poi_shared.models import INT64_MAX, Iso8601
from poi_status.dependencies import Pool, Settings
from poi_status.overview import service
from poi_status.overview.models import AreaLevel, AttentionKind, AttentionPage, StateCounts, Visitors

router = APIRouter(prefix="/v1/status", tags=["overview"])
Area = Annotated[
    str | None,
    Query(
        pattern=KATOTTH_SCOPE_PATTERN,
        description="Only this area (a KATOTTH code cut at oblast level or below, within your scope); "
        "by default all of your scope.",
    ),
]


def _patterns(caller: CurrentPrincipal, katotth: str | None) -> list[str]:
    try:
        return service.scope_patterns(caller, katotth)
    except service.NotAllowed as exc:
        raise forbid(str(exc)) from exc


@router.get("/lists/{kind}", response_model=AttentionPage, summary="Points that need a coordinator's attention")
async def attention_list(
    kind: AttentionKind,
    pool: Pool,
    settings: Settings,
    caller: CurrentPrincipal,
    katotth: Area = None,
    cursor: Annotated[
        str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,300}$", description="next_cursor of the previous page.")
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=INT64_MAX, description="At most the configured maximum (200 by default).")
    ] = 50,
) -> AttentionPage:
    """Stale (stopped reporting, oldest first), low on fuel (least first) or full (longest first), in your scope."""
    if limit > settings.max_page:
        raise invalid(("query", "limit"), f"must be at most {settings.max_page}", "less_than_equal")
    patterns = _patterns(caller, katotth)
    try:
        return await service.attention_page(
            pool, kind=kind, patterns=patterns, cursor=cursor, limit=limit, now=datetime.now(UTC)
        )
    except service.BadCursor as exc:
        raise invalid(("query", "cursor"), str(exc)) from exc


@router.get("/stats/states", response_model=StateCounts, summary="Points by state, per oblast or raion")
async def state_counts(
    pool: Pool,
    caller: CurrentPrincipal,
    katotth: Area = None,
    by: Annotated[AreaLevel, Query(description="Group by oblast or raion.")] = AreaLevel.oblast,
) -> StateCounts:
    """How many points in service are open, closed, full, on standby or unknown, and low on fuel, in your scope."""
    patterns = _patterns(caller, katotth)
    return await service.state_counts(pool, patterns=patterns, by=by, label=katotth or service.NATION)


@router.get("/stats/visitors", response_model=Visitors, summary="People served, per day and per area")
async def visitors(
    pool: Pool,
    caller: CurrentPrincipal,
    katotth: Area = None,
    since: Annotated[date | None, Iso8601, Query(description="First day (Kyiv time); 1 January by default.")] = None,
    until: Annotated[date | None, Iso8601, Query(description="Last day, inclusive; today by default.")] = None,
    by: Annotated[AreaLevel, Query(description="Group the areas by oblast or raion.")] = AreaLevel.oblast,
) -> Visitors:
    """People operators reported as served: the total since a date, each day's, and each area's, in your scope."""
    if since is not None and until is not None and since > until:
        raise invalid(("query", "since"), "must not be after until")
    patterns = _patterns(caller, katotth)
    return await service.visitors(pool, patterns=patterns, since=since, until=until, by=by)
