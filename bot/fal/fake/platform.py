"""fal's Platform API request list on the fake: ``GET /v1/models/requests/by-endpoint``.

The contract, as fal documents it (fal.ai/docs/platform-apis/v1/models/requests/by-endpoint):
``Authorization: Key ...``; query ``endpoint_id`` (required; repeated or comma-separated),
``start``/``end`` (ISO 8601 date or date-time, ``end`` exclusive; defaults: 24 hours ago, or 90
days ago with ``request_id``, and now), ``status`` (``success``, ``error``, ``user_error``),
``request_id``, ``expand=payloads`` (adds ``json_input`` and ``json_output``), ``limit`` (1..100,
default 50), ``cursor`` ("Pagination cursor encoding the page number": base64 of it, ``Mg==`` is
page 2) and ``sort_by`` (``ended_at``, the default, or ``duration``). The answer:
``{"items": [{request_id, endpoint_id, sent_at, started_at, ended_at, status_code, duration,
json_input?, json_output?}], "next_cursor": str | null, "has_more": bool}``.

Choices where fal's docs are silent (each a guess):
- the time window applies to ``sent_at``; items are newest first;
- requests not finished yet are listed with null ``ended_at``/``status_code`` (first), unless
  ``list_unfinished`` is off;
- a bad parameter is a 400, and errors use the shape a third party saw from api.fal.ai:
  ``{"error": {"type": "authorization_error", "message": "..."}}`` (401 for a wrong key; a 403,
  for a key without the scope, only through the ``requests`` fault route).
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from bot.fal.fake.job import FakeJob, iso
from bot.fal.fake.state import FakeState

LIST_PATH = "/v1/models/requests/by-endpoint"
OUTCOMES = ("success", "error", "user_error")
SORTS = ("ended_at", "duration")
_PLATFORM_ERRORS = {
    401: "Invalid API key or malformed Authorization header",
    403: "This API key is not allowed to access this resource",
}


def outcome(job: FakeJob) -> str | None:
    """``success`` (2xx), ``user_error`` (4xx) or ``error`` (5xx); None while unfinished."""
    if job.state != "COMPLETED":
        return None
    code = job.result_status
    if 200 <= code < 300:
        return "success"
    return "user_error" if 400 <= code < 500 else "error"


def _values(request: web.Request, name: str) -> list[str]:
    """A query parameter given repeated or comma-separated."""
    raw_values = request.query.getall(name, [])
    return [v.strip() for raw in raw_values for v in raw.split(",") if v.strip()]


def _when(value: str, name: str) -> float:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} must be an ISO 8601 date or date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _page(cursor: str | None) -> int:
    if cursor is None:
        return 1
    try:
        page = int(base64.b64decode(cursor, validate=True).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValueError("cursor is not one this API handed out") from None
    if page < 1:
        raise ValueError("cursor is not one this API handed out")
    return page


def _cursor(page: int) -> str:
    return base64.b64encode(str(page).encode()).decode()


def _stamp(when: float | None) -> str | None:
    return None if when is None else iso(datetime.fromtimestamp(when, UTC))


class PlatformRoutes(FakeState):
    """The request list, over every request the fake accepted (lost answers included)."""

    async def _list_requests(self, request: web.Request) -> web.StreamResponse:
        fault = self.faults.take("requests")
        if fault is not None and fault.kind in ("401", "403"):
            return self._platform_error(int(fault.kind), _PLATFORM_ERRORS[int(fault.kind)])
        if fault is not None:
            answer = await self._answer_fault(fault, request)
            if isinstance(answer, web.StreamResponse):
                return answer
        if self._check_key(request) is not None:
            return self._platform_error(401, _PLATFORM_ERRORS[401])
        try:
            body = self._list_page(request)
        except ValueError as exc:
            return self._platform_error(400, str(exc), "validation_error")
        return self._json(200, body)

    def _platform_error(
        self, status: int, message: str, kind: str = "authorization_error"
    ) -> web.Response:
        return self._json(status, {"error": {"type": kind, "message": message}})

    def _list_page(self, request: web.Request) -> dict[str, Any]:
        query = request.query
        endpoints = _values(request, "endpoint_id")
        if not endpoints:
            raise ValueError("endpoint_id is required")
        if len(endpoints) > 50:
            raise ValueError("at most 50 endpoint_id values")
        request_id = query.get("request_id")
        now = self.now()
        back = timedelta(days=90) if request_id else timedelta(hours=24)
        start = _when(query["start"], "start") if "start" in query else now - back.total_seconds()
        end = _when(query["end"], "end") if "end" in query else now
        status = query.get("status")
        if status is not None and status not in OUTCOMES:
            raise ValueError(f"status must be one of {', '.join(OUTCOMES)}")
        expand = _values(request, "expand")
        if any(e != "payloads" for e in expand):
            raise ValueError("expand accepts payloads")
        sort_by = query.get("sort_by", "ended_at")
        if sort_by not in SORTS:
            raise ValueError(f"sort_by must be one of {', '.join(SORTS)}")
        try:
            limit = int(query.get("limit", "50"))
        except ValueError:
            raise ValueError("limit must be an integer") from None
        if not 1 <= limit <= 100:
            raise ValueError("limit must be between 1 and 100")
        page = _page(query.get("cursor"))

        jobs = [
            job
            for job in self.jobs.values()
            if self.app_id in endpoints
            and start <= job.sent_wall < end
            and (request_id is None or job.request_id == request_id)
            and (status is None or outcome(job) == status)
            and (self.list_unfinished or job.state == "COMPLETED")
        ]
        jobs.sort(key=lambda job: self._sort_key(job, sort_by), reverse=True)
        chunk = jobs[(page - 1) * limit : page * limit]
        more = len(jobs) > page * limit
        return {
            "items": [self._item(job, payloads="payloads" in expand) for job in chunk],
            "next_cursor": _cursor(page + 1) if more else None,
            "has_more": more,
        }

    @staticmethod
    def _duration(job: FakeJob) -> float | None:
        if job.ended_wall is None or job.started_wall is None:
            return None
        return round(job.ended_wall - job.started_wall, 3)

    def _sort_key(self, job: FakeJob, sort_by: str) -> tuple[float, float]:
        if sort_by == "duration":
            return (self._duration(job) or 0.0, job.sent_wall)
        ended = job.ended_wall if job.ended_wall is not None else float("inf")
        return (ended, job.sent_wall)

    def _item(self, job: FakeJob, *, payloads: bool) -> dict[str, Any]:
        done = job.state == "COMPLETED"
        item: dict[str, Any] = {
            "request_id": job.request_id,
            "endpoint_id": self.app_id,
            "sent_at": _stamp(job.sent_wall),
            "started_at": _stamp(job.started_wall),
            "ended_at": _stamp(job.ended_wall),
            "status_code": job.result_status if done else None,
            "duration": self._duration(job),
        }
        if payloads:
            item["json_input"] = job.arguments
            item["json_output"] = job.result_body if done else None
        return item
