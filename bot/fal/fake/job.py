"""One request inside the fake: its state from ``IN_QUEUE`` to ``COMPLETED`` and its answer."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.fal.fake.faults import Fault


def iso(when: datetime) -> str:
    """fal's timestamp format: milliseconds and ``Z``."""
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class FakeJob:
    """One queued request and everything the fake knows about it."""

    request_id: str
    arguments: dict[str, Any]
    fault: Fault | None = None
    state: str = "IN_QUEUE"
    logs: list[dict[str, str]] = field(default_factory=list)
    cancel_requested: bool = False
    seed: int | None = None
    error: str | None = None
    error_type: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    result_status: int = 200
    result_body: Any = None
    result_headers: dict[str, str] = field(default_factory=dict)
    output_urls: list[str] = field(default_factory=list)
    submitted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    #: The fake's wall clock (settable in tests); the request list and result expiry use it.
    clock: Callable[[], float] = time.time
    sent_wall: float = 0.0
    started_wall: float | None = None
    ended_wall: float | None = None
    input_sizes: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sent_wall = self.clock()

    def start(self) -> None:
        """Leave the queue: ``IN_PROGRESS`` from now."""
        self.state = "IN_PROGRESS"
        self.started_at = time.monotonic()
        self.started_wall = self.clock()

    @property
    def result_bytes(self) -> int:
        """Size of the result JSON, which decides how long fal keeps it."""
        return len(json.dumps(self.result_body).encode())

    def summary(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "state": self.state,
            "seed": self.seed,
            "error_type": self.error_type,
            "result_status": self.result_status,
            "cancel_requested": self.cancel_requested,
            "output_urls": self.output_urls,
            "sent_at": self.sent_wall,
            "ended_at": self.ended_wall,
        }

    def log(self, message: str) -> None:
        """Add one log line, as the status endpoint shows them."""
        self.logs.append(
            {
                "message": message,
                "level": "INFO",
                "source": "USER",
                "timestamp": iso(datetime.now(UTC)),
            }
        )

    def finish(
        self,
        status: int,
        body: Any,
        *,
        error: str | None = None,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Complete with the result endpoint's answer (and the status's ``error``, if any)."""
        self.result_status = status
        self.result_body = body
        self.result_headers = headers or {}
        self.error = error
        self.error_type = error_type
        started = self.started_at or time.monotonic()
        self.metrics = {"inference_time": round(time.monotonic() - started, 4)}
        self.ended_wall = self.clock()
        self.state = "COMPLETED"

    def finish_flat(self, error_type: str, detail: str, status: int) -> None:
        """Complete with one of fal's flat errors (``{"detail", "error_type"}``)."""
        self.finish(
            status,
            {"detail": detail, "error_type": error_type},
            error=detail,
            error_type=error_type,
            headers={"X-Fal-Error-Type": error_type},
        )

    def finish_cancelled(self) -> None:
        self.finish_flat("client_cancelled", "Request cancelled by the client", 499)
