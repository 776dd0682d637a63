"""One job's way from its stored state to a final one (DESIGN §3); each step stored before the next.

    queued/submitting -> submit to fal -> running(request_id) -> poll -> fetch -> fetched -> deliver

``JobRun.run`` is the sequence; the submit and fetch steps live in ``bot.engine.submit`` and
``bot.engine.fetch``. A run gets everything it needs in a ``RunContext`` from the engine and reads
no engine internals. It returns, leaving the job in a stored state it resumes from, whenever the
engine is stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from bot.engine import fetch, submit
from bot.engine.delivery import Undeliverable
from bot.engine.follow import FalTime, StatusFeed
from bot.engine.run_context import TIMEOUT_REASON, RunContext
from bot.fal.client import QueueStatus
from bot.fal.errors import FalError
from bot.model import Job, JobState, Progress
from bot.store import jobs as jobs_repo

__all__ = ["DELIVERY_ATTEMPTS", "JobRun", "RunContext"]

log = logging.getLogger(__name__)

DELIVERY_ATTEMPTS = 5


class JobRun:
    """One job's run; ``run()`` is the whole of it."""

    def __init__(self, ctx: RunContext, job_id: int) -> None:
        self.ctx = ctx
        self.job_id = job_id
        self._last_progress = 0.0

    async def run(self) -> None:
        job: Job | None = await self.ctx.job(self.job_id)
        while job is not None:
            if job.state == JobState.QUEUED:
                job = await submit.submit(self.ctx, job)
            elif job.state == JobState.UNSURE:
                job = await submit.reconcile(self.ctx, job)
            elif job.state == JobState.RUNNING:
                job = await self.follow(job)
            elif job.state == JobState.FETCHED:
                await self.deliver(job)
                return
            else:  # final, or ``submitting`` left by a crashed worker: the next start sees to it
                return

    # -- at fal ------------------------------------------------------------------------------------

    async def follow(self, job: Job) -> Job | None:
        """Follow the job at fal until it completes, then fetch at once.

        The status stream is the default, polling the fall back. After a restart fal's status
        is read before any timeout decision, and the timeout counts only the time fal reported
        the job queued or running (``FalTime``): a job fal finished is fetched and charged,
        however long ago it started. A timed-out job is cancelled at fal and still followed:
        if fal finished it first, fal billed it, so it is fetched and charged."""
        ctx = self.ctx
        assert job.fal_request_id is not None
        rid = job.fal_request_id
        fal_time = FalTime(ctx.db, job, ctx.clock)
        feed = StatusFeed(ctx.fal, rid, ctx.settings, ctx.metrics, ctx.stopping, job.id)
        limit = ctx.settings.fal_job_timeout_seconds
        cancel_sent = timed_out = False
        try:
            while True:
                if ctx.stopping.is_set():
                    await fal_time.save()
                    return None  # running with a stored request id: resumes after restart
                wants_cancel = job.id in ctx.cancel_requests or job.cancel_requested
                if wants_cancel and not cancel_sent:
                    cancel_sent = True
                    with contextlib.suppress(FalError):
                        await ctx.fal.cancel(rid)
                try:
                    status = await feed.next()
                except FalError as exc:
                    ctx.count_fal_error(exc)
                    if not exc.retryable and exc.status is not None and exc.status < 500:
                        await ctx.settlement.fail(job, [JobState.RUNNING], exc.user_message)
                        return None
                    log.warning("job=%s status poll failed (%s); will retry", job.id, exc)
                    continue
                if status is None:
                    continue
                if status.done:
                    await fal_time.save()
                    return await fetch.fetch(ctx, job, cancelled=wants_cancel, timed_out=timed_out)
                await fal_time.observe(status)
                await self.progress(job, status)
                if fal_time.seconds > limit and not timed_out:
                    timed_out = cancel_sent = True
                    await fal_time.save()
                    log.warning("job=%s at fal for %.0f s; cancelling", job.id, fal_time.seconds)
                    with contextlib.suppress(FalError):
                        await ctx.fal.cancel(rid)
                if timed_out and fal_time.seconds > 2 * limit:
                    # fal ignores the cancel: stop waiting. Should it still finish, the money
                    # is fal's; counted so the owner knows to look.
                    ctx.metrics.fal_possible_orphans.inc()
                    await ctx.settlement.fail(job, [JobState.RUNNING], TIMEOUT_REASON)
                    return None
        finally:
            await feed.close()

    async def progress(self, job: Job, status: QueueStatus | None) -> None:
        now = time.monotonic()
        if now - self._last_progress < self.ctx.settings.progress_interval_seconds:
            return
        self._last_progress = now
        if status is None:
            progress = Progress(job.state)
        elif status.status == "IN_QUEUE":
            progress = Progress("fal_queue", queue_position=status.queue_position)
        else:
            progress = Progress("running", logs=tuple(line.message for line in status.logs[-3:]))
        try:
            await self.ctx.delivery.progress(job, progress)
        except Exception:  # progress is cosmetic; the job goes on
            log.warning("job=%s progress update failed", job.id, exc_info=True)

    # -- delivery ----------------------------------------------------------------------------------

    async def deliver(self, job: Job) -> None:
        """Post the result, retrying transient errors; it stays fetched if all attempts fail."""
        ctx = self.ctx
        assert job.output_hash is not None
        image = await ctx.blobs.get(job.output_hash)
        if image is None:
            await self.undeliverable(job, "the result image is missing from storage")
            return
        delay = 1.0
        for attempt in range(1, DELIVERY_ATTEMPTS + 1):
            try:
                message_id = await ctx.delivery.deliver(job, image)
            except Undeliverable as exc:
                await self.undeliverable(job, exc.reason)
                return
            except Exception:  # Discord hiccups of any kind: retried, then left for next start
                log.warning("job=%s delivery attempt %d failed", job.id, attempt, exc_info=True)
                if attempt == DELIVERY_ATTEMPTS or ctx.stopping.is_set():
                    return  # stays fetched: delivered after the next start
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ctx.stopping.wait(), timeout=delay)
                delay *= 2
                continue
            async with ctx.db.transaction(serial=False) as tx:
                await jobs_repo.transition(
                    tx, job.id, [JobState.FETCHED], JobState.DELIVERED, result_message_id=message_id
                )
            await ctx.on_change(JobState.DELIVERED)
            log.info("job=%s delivered message=%s", job.id, message_id)
            return

    async def undeliverable(self, job: Job, reason: str) -> None:
        """The result can never be posted: keep it (still charged) and stop trying."""
        ended = await self.ctx.settlement.end_job(
            job, [JobState.FETCHED], JobState.UNDELIVERABLE, reason
        )
        if ended:
            log.warning("job=%s undeliverable: %s (output kept, still charged)", job.id, reason)
