"""Following a job at fal: where its status comes from, and how long fal has had it.

``StatusFeed`` reads fal's status stream (server-sent events, one request per job) and falls back
to polling the status, with backoff, when the stream breaks, goes silent or ends before
``COMPLETED``. ``FalTime`` is the job timeout's clock: it counts only the time fal reported the
job queued or running, from the statuses it actually saw, and is stored with the job so a
restart goes on counting where it left off (DESIGN §3).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable

from bot.fal.client import FalClient, QueueStatus
from bot.fal.errors import FalError
from bot.metrics import Metrics
from bot.model import Job
from bot.settings import Settings
from bot.store import jobs as jobs_repo
from bot.store.db import Database

log = logging.getLogger(__name__)

#: Store the fal time at least this often while nothing changes (a crash loses no more).
SAVE_EVERY = 10.0


class FalTime:
    """Seconds fal reported the job queued or running, from consecutive observations.

    Between two statuses that both say queued or running, fal had the job the whole time: the
    interval counts, a restart in between included (fal said so before and after). Time in our
    own queue, in the submit window, or after fal finished never counts."""

    def __init__(self, db: Database, job: Job, clock: Callable[[], float]) -> None:
        self.db = db
        self.job_id = job.id
        self.clock = clock
        self.seconds = job.fal_seconds
        self.seen_at = job.fal_seen_at
        self._saved_at = clock()
        self._last: str | None = None

    async def observe(self, status: QueueStatus) -> None:
        """fal reports ``status`` now (queued or running): add the time since the last one."""
        now = self.clock()
        if self.seen_at is not None:
            self.seconds += max(0.0, now - self.seen_at)
        self.seen_at = now
        if status.status != self._last or now - self._saved_at >= SAVE_EVERY:
            self._last = status.status
            await self.save()

    async def save(self) -> None:
        self._saved_at = self.clock()
        async with self.db.transaction(serial=False) as tx:
            await jobs_repo.update_job(
                tx, self.job_id, fal_seconds=self.seconds, fal_seen_at=self.seen_at
            )


class StatusFeed:
    """The job's latest status: the stream while it works, then polling with backoff."""

    def __init__(
        self,
        fal: FalClient,
        request_id: str,
        settings: Settings,
        metrics: Metrics,
        stopping: asyncio.Event,
        job_id: int,
    ) -> None:
        self.fal = fal
        self.request_id = request_id
        self.settings = settings
        self.metrics = metrics
        self.stopping = stopping
        self.job_id = job_id
        self.latest: QueueStatus | None = None
        self.polling = not settings.fal_status_stream
        self._changed = asyncio.Event()
        self._stream_task: asyncio.Task[None] | None = None
        self._delay = settings.poll_interval_seconds
        self._polled = False

    async def next(self) -> QueueStatus | None:
        """The latest status after waiting a little for news; None when none is known yet.

        Raises the ``FalError`` of a poll, for the caller to judge."""
        if not self.polling:
            if self._stream_task is None:
                self._stream_task = asyncio.create_task(self._read_stream())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.settings.poll_interval_seconds)
            self._changed.clear()
            if not self._stream_task.done() or (self.latest is not None and self.latest.done):
                return self.latest
            self.polling = True  # the stream broke or ended early: poll from now on
        if self._polled:
            await self._pause()
        self._polled = True
        status = await self.fal.status(self.request_id)
        self.latest = status
        return status

    async def _pause(self) -> None:
        jitter = self._delay * random.uniform(0.8, 1.2)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=jitter)
        self._delay = min(max(self._delay * 1.5, 0.05), self.settings.poll_max_interval_seconds)

    async def _read_stream(self) -> None:
        stream: AsyncIterator[QueueStatus] = self.fal.stream_status(self.request_id)
        try:
            async for status in stream:
                self.latest = status
                self._changed.set()
        except FalError as exc:  # FalStreamError, or the stream's HTTP answer was an error
            self.metrics.fal_stream_fallbacks.inc()
            log.info("job=%s status stream ended (%s); polling instead", self.job_id, exc)
        finally:
            self._changed.set()

    async def close(self) -> None:
        task = self._stream_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
