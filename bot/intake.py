"""Taking images in from members: how many bytes may be downloading at once, and the normalised
image as a job input (stored only once its job is admitted).

Issue 11: limits come before work. A front end, for each edit with uploads:

1. ``await engine.precheck(...)`` with the sizes the uploads declare: a refusal costs nothing;
2. ``async with engine.downloads.hold(user_id, sum(declared bytes)):`` download (each file capped
   at its declared size) and normalise;
3. ``await engine.submit(EditRequest(params, tuple(new_input(i) for i in images), ...))``: the
   images reach the disk only if the job is admitted.

Bytes in flight: a member may have at most ``per_member`` bytes downloading (8 inputs of the
largest accepted size, one full edit); more is refused at once ("Too many uploads in progress"),
since the member's own earlier uploads are what is in the way. The whole bot may have at most
``total`` bytes downloading (``max_download_bytes_in_flight``); a member who would pass it waits
for room, up to ``wait_seconds``, then is refused: other members' uploads finish within seconds,
and a short wait beats a refusal they did nothing to earn. What is held is let go on any exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from bot.errors import UserError
from bot.images import NormalizedImage
from bot.model import MAX_IMAGES, InputImage
from bot.settings import Settings

log = logging.getLogger(__name__)

GLOBAL_WAIT_SECONDS = 30.0


def new_input(image: NormalizedImage) -> InputImage:
    """A normalised upload as a job input; ``Engine.submit`` stores it once the job is admitted."""
    return InputImage(image.sha256, image.width, image.height, image.data, image.content_type)


class DownloadBudget:
    """Bytes of uploads downloading at once, per member and in all."""

    def __init__(
        self, per_member: int, total: int, *, wait_seconds: float = GLOBAL_WAIT_SECONDS
    ) -> None:
        if per_member < 1 or total < 1:
            raise ValueError("download budgets must be positive")
        self.per_member = per_member
        self.total = total
        self.wait_seconds = wait_seconds
        self._members: dict[int, int] = {}
        self._in_flight = 0
        self._room = asyncio.Condition()

    @classmethod
    def from_settings(cls, settings: Settings) -> DownloadBudget:
        return cls(MAX_IMAGES * settings.max_input_bytes, settings.max_download_bytes_in_flight)

    @property
    def in_flight(self) -> int:
        """Bytes held by every member together."""
        return self._in_flight

    def held_by(self, user_id: int) -> int:
        return self._members.get(user_id, 0)

    @contextlib.asynccontextmanager
    async def hold(self, user_id: int, nbytes: int) -> AsyncIterator[None]:
        """Hold ``nbytes`` of the budget for ``user_id`` while the block runs; raises UserError
        when the member's share is used up, or the bot's stays full for ``wait_seconds``."""
        nbytes = max(0, nbytes)
        if self.held_by(user_id) + nbytes > self.per_member:
            raise UserError(
                "Too many uploads in progress; try again in a moment.", limit="downloads_member"
            )
        # The member's share is taken before waiting, so one member cannot line up many waits.
        self._members[user_id] = self.held_by(user_id) + nbytes
        try:
            await self._take(nbytes)
            try:
                yield
            finally:
                async with self._room:
                    self._in_flight -= nbytes
                    self._room.notify_all()
        finally:
            left = self.held_by(user_id) - nbytes
            if left:
                self._members[user_id] = left
            else:
                self._members.pop(user_id, None)

    async def _take(self, nbytes: int) -> None:
        busy = UserError(
            "Flexbot is busy receiving other uploads; try again in a moment.",
            limit="downloads_total",
        )
        if nbytes > self.total:
            raise busy  # could never fit, however long it waited

        def fits() -> bool:
            return self._in_flight + nbytes <= self.total

        async with self._room:
            if not fits():
                try:
                    await asyncio.wait_for(self._room.wait_for(fits), self.wait_seconds)
                except TimeoutError:
                    log.info("download budget full: %d bytes in flight", self._in_flight)
                    raise busy from None
            self._in_flight += nbytes
