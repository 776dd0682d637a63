"""fal.ai access: the queue/storage client, its typed errors, and a fake server for tests."""

from bot.fal.client import (
    AppId,
    CancelOutcome,
    EditResult,
    FalClient,
    LogLine,
    OutputImage,
    QueueState,
    QueueStatus,
)
from bot.fal.errors import (
    FalAuthError,
    FalCancelledError,
    FalContentPolicyError,
    FalDownloadError,
    FalError,
    FalTimeoutError,
    FalUnavailableError,
    FalValidationError,
    FieldError,
)

__all__ = [
    "AppId",
    "CancelOutcome",
    "EditResult",
    "FalAuthError",
    "FalCancelledError",
    "FalClient",
    "FalContentPolicyError",
    "FalDownloadError",
    "FalError",
    "FalTimeoutError",
    "FalUnavailableError",
    "FalValidationError",
    "FieldError",
    "LogLine",
    "OutputImage",
    "QueueState",
    "QueueStatus",
]
