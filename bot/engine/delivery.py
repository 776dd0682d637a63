"""The port through which the engine talks to members (Discord cogs, the CLI, tests)."""

from __future__ import annotations

from typing import Protocol

from bot.errors import FlexbotError, Words
from bot.model import Job, Progress

__all__ = ["Delivery", "Progress", "Undeliverable", "Words"]


class Undeliverable(FlexbotError):
    """The result can never be posted there (channel deleted, permissions removed)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class Delivery(Protocol):
    """How results reach people. Implementations must be safe to call again for the same job:
    ``deliver`` gets ``job.delivery_key`` to deduplicate where the platform allows it."""

    async def progress(self, job: Job, progress: Progress) -> None:
        """Show progress; called at most once per progress interval per job."""

    async def deliver(self, job: Job, image: bytes) -> int | None:
        """Post the result; return the message id, or raise Undeliverable."""

    async def failed(self, job: Job, reason: Words) -> None:
        """Tell the requester the job ended without a result, and why: a fixed English sentence
        (its own msgid) or a ``bot.i18n.Text``, shown in the reader's language."""
