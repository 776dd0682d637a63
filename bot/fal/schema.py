"""fal's queue API in typed values: the app id, queue states, statuses and edit results.

``parse_status`` and ``parse_result`` turn fal's JSON into these values; anything fal sends that
does not fit becomes a ``FalError`` rather than a half-filled object.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from bot.fal.errors import FalError, error_from_status

#: fal's app namespaces that prefix ``owner/alias`` (fal_client ``APP_NAMESPACES``).
APP_NAMESPACES = ("workflows", "comfy")

QueueState = Literal["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
CancelOutcome = Literal["CANCELLATION_REQUESTED", "ALREADY_COMPLETED", "NOT_FOUND", "OK"]
_STATES: tuple[QueueState, ...] = ("IN_QUEUE", "IN_PROGRESS", "COMPLETED")
CANCEL_OUTCOMES: tuple[CancelOutcome, ...] = (
    "CANCELLATION_REQUESTED",
    "ALREADY_COMPLETED",
    "NOT_FOUND",
    "OK",
)


@dataclass(frozen=True, slots=True)
class AppId:
    """An endpoint id split like fal_client's ``AppId.from_endpoint_id``."""

    owner: str
    alias: str
    path: str | None = None
    namespace: str | None = None

    @classmethod
    def from_endpoint_id(cls, endpoint_id: str) -> AppId:
        parts = [p for p in endpoint_id.strip("/").split("/") if p]
        namespace = None
        if parts and parts[0] in APP_NAMESPACES:
            namespace, parts = parts[0], parts[1:]
        if len(parts) < 2:
            raise ValueError(f"fal endpoint id needs owner/alias, got {endpoint_id!r}")
        return cls(parts[0], parts[1], "/".join(parts[2:]) or None, namespace)

    @property
    def queue_base(self) -> str:
        """``[namespace/]owner/alias``: the prefix of status, result and cancel URLs."""
        prefix = f"{self.namespace}/" if self.namespace else ""
        return f"{prefix}{self.owner}/{self.alias}"

    @property
    def submit_path(self) -> str:
        return f"{self.queue_base}/{self.path}" if self.path else self.queue_base


@dataclass(frozen=True, slots=True)
class LogLine:
    """One log line of a running request."""

    message: str
    level: str
    timestamp: str | None


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """One answer of the status endpoint."""

    status: QueueState
    queue_position: int | None
    logs: list[LogLine]
    error: str | None
    error_type: str | None
    metrics: dict[str, Any]

    @property
    def done(self) -> bool:
        return self.status == "COMPLETED"

    def as_error(self, request_id: str | None = None) -> FalError | None:
        """The typed error a ``COMPLETED`` status reports, or None."""
        if self.status != "COMPLETED" or not (self.error or self.error_type):
            return None
        return error_from_status(
            self.error or self.error_type or "failed", self.error_type, request_id=request_id
        )


@dataclass(frozen=True, slots=True)
class OutputImage:
    """One generated image as fal describes it."""

    url: str
    width: int | None
    height: int | None
    content_type: str | None
    file_name: str | None = None
    file_size: int | None = None


@dataclass(frozen=True, slots=True)
class EditResult:
    """The output of a finished edit."""

    images: list[OutputImage]
    seed: int
    request_id: str
    #: fal's safety checker, one flag per image (``has_nsfw_concepts``). fal's FLUX endpoints
    #: return it beside ``images``; the schema of flux-2-flex/edit does not list it
    #: (shared/reference/fal-queue-api.md §8), so a missing or malformed field is "not flagged".
    nsfw_flags: tuple[bool, ...] = ()

    @property
    def flagged(self) -> bool:
        """The first image (the one Flexbot keeps) was flagged by fal's safety checker."""
        return bool(self.nsfw_flags and self.nsfw_flags[0])


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_status(body: object) -> QueueStatus:
    """A status JSON object as a ``QueueStatus``; unknown states are an error."""
    if not isinstance(body, dict) or body.get("status") not in _STATES:
        shown = body.get("status") if isinstance(body, dict) else type(body).__name__
        raise FalError(f"unexpected queue status {shown!r}")
    logs = []
    for line in body.get("logs") or []:
        if isinstance(line, dict):
            stamp = line.get("timestamp")
            logs.append(
                LogLine(
                    message=str(line.get("message", "")),
                    level=str(line.get("level", "INFO")),
                    timestamp=stamp if isinstance(stamp, str) else None,
                )
            )
    error = body.get("error")
    error_type = body.get("error_type")
    metrics = body.get("metrics")
    return QueueStatus(
        status=cast(QueueState, body["status"]),
        queue_position=_int_or_none(body.get("queue_position")),
        logs=logs,
        error=error if isinstance(error, str) else None,
        error_type=error_type if isinstance(error_type, str) else None,
        metrics=metrics if isinstance(metrics, dict) else {},
    )


def parse_result(body: object, request_id: str) -> EditResult:
    """The output JSON of ``flux-2-flex/edit`` as an ``EditResult``."""
    if not isinstance(body, dict) or not isinstance(body.get("images"), list):
        raise FalError("fal returned a result without images", request_id=request_id)
    images = []
    for item in body["images"]:
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            raise FalError("fal returned an image without a URL", request_id=request_id)
        content_type = item.get("content_type")
        file_name = item.get("file_name")
        images.append(
            OutputImage(
                url=item["url"],
                width=_int_or_none(item.get("width")),
                height=_int_or_none(item.get("height")),
                content_type=content_type if isinstance(content_type, str) else None,
                file_name=file_name if isinstance(file_name, str) else None,
                file_size=_int_or_none(item.get("file_size")),
            )
        )
    seed = _int_or_none(body.get("seed"))
    if seed is None:
        raise FalError("fal returned a result without a seed", request_id=request_id)
    flags = body.get("has_nsfw_concepts")
    nsfw_flags = tuple(flag is True for flag in flags) if isinstance(flags, list) else ()
    return EditResult(images=images, seed=seed, request_id=request_id, nsfw_flags=nsfw_flags)


#: The ``status`` filter of fal's request list: 2xx, 5xx and 4xx outcomes respectively
#: (fal.ai/docs/platform-apis/v1/models/analytics names the same three buckets).
RequestOutcome = Literal["success", "error", "user_error"]
REQUEST_OUTCOMES: tuple[RequestOutcome, ...] = ("success", "error", "user_error")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One item of fal's request list (``GET api.fal.ai/v1/models/requests/by-endpoint``).

    Fields as fal documents them: ``sent_at`` (fal received it), ``started_at``, ``ended_at``,
    ``status_code`` (the result's HTTP status), ``duration`` (seconds) and, with
    ``expand=payloads``, ``json_input``/``json_output``. The list carries no price: fal
    documents per-request ``billable_units`` only on the serverless variant of this endpoint,
    for the app's owner, so the cost is priced from ``json_input`` and the output by the
    caller. Times the list leaves out (a request not finished yet) are None."""

    request_id: str
    endpoint_id: str | None
    sent_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    status_code: int | None
    duration: float | None
    json_input: dict[str, Any] | None
    json_output: Any

    @property
    def outcome(self) -> RequestOutcome | None:
        """``success`` (2xx), ``user_error`` (4xx), ``error`` (5xx), or None while unfinished."""
        code = self.status_code
        if code is None:
            return None
        if 200 <= code < 300:
            return "success"
        return "user_error" if 400 <= code < 500 else "error"


@dataclass(frozen=True, slots=True)
class RequestPage:
    """One page of the request list and where the next one starts."""

    items: list[RequestRecord]
    next_cursor: str | None
    has_more: bool


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 timestamp (``Z`` or an offset) as an aware UTC datetime; None otherwise."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # fal's timestamps are UTC
    return parsed.astimezone(UTC)


def format_time(when: datetime, *, round_up: bool = False) -> str:
    """``when`` as ``YYYY-MM-DDTHH:MM:SSZ``, the form fal's docs show for ``start``/``end``.

    Whole seconds only (fractions are not in fal's examples): ``round_up`` moves a fractional
    end forward so the window never shrinks. A naive datetime is taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    if round_up and when.microsecond:
        when = when + timedelta(seconds=1)
    return when.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _float_or_none(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def parse_request_page(body: object) -> RequestPage:
    """A request-list answer, ``{"items": [...], "next_cursor": ..., "has_more": ...}``."""
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise FalError("fal's request list answered without an items list")
    records = []
    for item in body["items"]:
        if not isinstance(item, dict) or not isinstance(item.get("request_id"), str):
            raise FalError("fal's request list holds an item without a request_id")
        endpoint = item.get("endpoint_id")
        json_input = item.get("json_input")
        records.append(
            RequestRecord(
                request_id=item["request_id"],
                endpoint_id=endpoint if isinstance(endpoint, str) else None,
                sent_at=parse_time(item.get("sent_at")),
                started_at=parse_time(item.get("started_at")),
                ended_at=parse_time(item.get("ended_at")),
                status_code=_int_or_none(item.get("status_code")),
                duration=_float_or_none(item.get("duration")),
                json_input=json_input if isinstance(json_input, dict) else None,
                json_output=item.get("json_output"),
            )
        )
    cursor = body.get("next_cursor")
    next_cursor = cursor if isinstance(cursor, str) and cursor else None
    # has_more is "derived from next_cursor" (fal docs); trust the cursor if they disagree.
    return RequestPage(records, next_cursor, next_cursor is not None)
