"""The change feed route."""

from fastapi import APIRouter, Request, Response

from poi_search.changes import service
from poi_search.changes.models import ChangesAnswer, ChangesQuery
from poi_search.http import answer, data_age, parse_query, query_parameters
from poi_search.settings import SearchSettings
from poi_shared.errors import invalid

router = APIRouter(prefix="/v1/changes", tags=["change feed"])


@router.get(
    "",
    summary="Every change since a cursor",
    response_model=None,
    responses={200: {"model": ChangesAnswer, "description": "A page of changes, oldest first."}},
    openapi_extra=query_parameters(ChangesQuery),
)
async def changes(request: Request) -> Response:
    """Keep a full mirror: start without a cursor, then ask with each page's next_cursor (on any replica)."""
    query = parse_query(request, ChangesQuery)
    settings: SearchSettings = request.app.state.settings
    if query.limit > settings.max_page_limit:
        raise invalid(("query", "limit"), f"must be at most {settings.max_page_limit}", "less_than_equal")
    age_s, model = data_age(request), request.app.state.read_model
    body, etag = service.changes_page(
        model, after=service.parse_cursor(query.cursor, model), limit=query.limit, age_s=age_s
    )
    return answer(request, body, etag=etag, max_age_s=0, data_age_s=age_s)
