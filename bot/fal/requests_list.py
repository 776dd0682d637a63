"""fal's Platform API request list (``{api_url}/v1/models/requests/by-endpoint``), paged.

The one place that shows requests whose submit answer was lost; ``FalClient.list_requests``
documents the contract (fal.ai/docs/platform-apis/v1/models/requests/by-endpoint).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.fal.errors import FalAuthError, FalError, FalRequestListForbidden
from bot.fal.schema import (
    RequestOutcome,
    RequestPage,
    RequestRecord,
    format_time,
    parse_request_page,
)
from bot.fal.transport import Call, Transport

#: The request list pages at most 100 items (``limit``, 1..100, default 50).
REQUEST_LIST_PAGE_MAX = 100
#: Pages followed at most: 100 000 requests; a cursor that never ends is a bug, not a history.
_REQUEST_LIST_MAX_PAGES = 1000
_REQUEST_LIST_PATH = "/v1/models/requests/by-endpoint"


@dataclass(frozen=True)
class RequestQuery:
    """The filters of one request-list read; ``None`` leaves a filter to fal's default."""

    endpoint_id: str
    start: datetime | None = None
    end: datetime | None = None
    request_id: str | None = None
    status: RequestOutcome | None = None
    payloads: bool = False
    page_size: int = REQUEST_LIST_PAGE_MAX

    def params(self) -> dict[str, str]:
        """The query string of the first page."""
        if not 1 <= self.page_size <= REQUEST_LIST_PAGE_MAX:
            raise ValueError(f"page_size must be 1..{REQUEST_LIST_PAGE_MAX}")
        params = {"endpoint_id": self.endpoint_id, "limit": str(self.page_size)}
        if self.start is not None:
            params["start"] = format_time(self.start)
        if self.end is not None:
            params["end"] = format_time(self.end, round_up=True)
        if self.status is not None:
            params["status"] = self.status
        if self.request_id is not None:
            params["request_id"] = self.request_id
        if self.payloads:
            params["expand"] = "payloads"
        return params


async def list_requests(
    transport: Transport, api_url: str, query: RequestQuery
) -> list[RequestRecord]:
    """Every record the query matches, following ``next_cursor`` until fal says no more."""
    params = query.params()
    records: list[RequestRecord] = []
    seen: set[str] = set()
    cursor: str | None = None
    for _ in range(_REQUEST_LIST_MAX_PAGES):
        page_params = params | ({"cursor": cursor} if cursor else {})
        page = await _request_page(transport, api_url, page_params)
        records.extend(page.items)
        if not page.has_more or page.next_cursor is None:
            return records
        if page.next_cursor in seen:
            raise FalError(f"fal's request list repeated the cursor {page.next_cursor!r}")
        seen.add(page.next_cursor)
        cursor = page.next_cursor
    raise FalError(f"fal's request list ran past {_REQUEST_LIST_MAX_PAGES} pages")


async def _request_page(transport: Transport, api_url: str, params: dict[str, str]) -> RequestPage:
    url = f"{api_url}{_REQUEST_LIST_PATH}"
    try:
        response = await transport.send("GET", url, Call(), params=params)
    except FalAuthError as exc:
        if exc.status not in (401, 403):
            raise  # no key configured: nothing was asked
        raise FalRequestListForbidden(
            exc.message, status=exc.status, error_type=exc.error_type, detail=exc.detail
        ) from exc
    return parse_request_page(transport.json(response))
