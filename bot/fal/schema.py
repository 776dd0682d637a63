"""fal's queue API in typed values: the app id, queue states, statuses and edit results.

``parse_status`` and ``parse_result`` turn fal's JSON into these values; anything fal sends that
does not fit becomes a ``FalError`` rather than a half-filled object.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    return EditResult(images=images, seed=seed, request_id=request_id)
