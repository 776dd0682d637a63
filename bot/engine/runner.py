"""One job's way from its stored state to a final one (DESIGN §3); each step stored before the next.

    queued/submitting -> submit to fal -> running(request_id) -> poll -> fetch -> fetched -> deliver

A run gets everything it needs in a ``RunContext`` from the engine and reads no engine internals.
It returns, leaving the job in a stored state it resumes from, whenever the engine is stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Container
from dataclasses import dataclass, replace

from bot.engine.delivery import Delivery, Undeliverable
from bot.engine.inputs import Inputs
from bot.engine.settlement import OnChange, Settlement
from bot.errors import UserError
from bot.fal.client import EditResult, FalClient, QueueStatus
from bot.fal.errors import FalError
from bot.images import image_size
from bot.metrics import Metrics
from bot.model import Job, JobState, Progress
from bot.pricing import PriceList
from bot.settings import Settings
from bot.store import jobs as jobs_repo
from bot.store.blobs import BlobStore
from bot.store.db import Database, Tx

log = logging.getLogger(__name__)

DELIVERY_ATTEMPTS = 5
#: Seeds Flexbot picks when the member gave none: fal's own range for a random seed.
SEED_RANGE = 2**32
SUBMIT_STATES = (JobState.QUEUED, JobState.SUBMITTING)


@dataclass(frozen=True, slots=True)
class RunContext:
    """What a job's run may use, handed over by the engine once at start."""

    db: Database
    fal: FalClient
    blobs: BlobStore
    delivery: Delivery
    settings: Settings
    prices: PriceList
    metrics: Metrics
    clock: Callable[[], float]
    inputs: Inputs
    settlement: Settlement
    on_change: OnChange
    #: The money check just before a queued job starts (``Admission.budget_at_dispatch``).
    budget_at_dispatch: Callable[[Job, Tx], Awaitable[UserError | None]]
    #: Set when the engine stops: runs return at their next stored state.
    stopping: asyncio.Event
    #: Ids of jobs whose cancel was asked in this process (the stored flag covers restarts).
    cancel_requests: Container[int]
    #: Records how long a fal run took (for queue ETAs).
    record_duration: Callable[[float], None]


class JobRun:
    """One job's run; ``run()`` is the whole of it."""

    def __init__(self, ctx: RunContext, job_id: int) -> None:
        self.ctx = ctx
        self.job_id = job_id
        self._last_progress = 0.0

    async def job(self) -> Job:
        job = await jobs_repo.get_job(self.ctx.db, self.job_id)
        assert job is not None
        return job

    async def run(self) -> None:
        job: Job | None = await self.job()
        if job is not None and job.state in SUBMIT_STATES:
            job = await self.submit(job)
        if job is not None and job.state == JobState.RUNNING:
            job = await self.poll(job)
        if job is not None and job.state == JobState.FETCHED:
            await self.deliver(job)

    def _count_fal_error(self, exc: FalError) -> None:
        self.ctx.metrics.fal_errors.labels(exc.error_type or type(exc).__name__).inc()

    async def submit(self, job: Job) -> Job | None:
        """Send the job to fal once (a crash in the submit window allows one resubmit)."""
        ctx = self.ctx
        fail = ctx.settlement.fail
        resubmit = job.state == JobState.SUBMITTING
        if resubmit and job.cancel_requested:
            # Cancelled while its first submit was in flight: don't send it again.
            await self.cancelled(job)
            return None
        if resubmit and job.submit_attempts >= 2:
            reason = (
                "Flexbot was interrupted twice while sending this edit to fal; nothing was "
                "charged. Please try again."
            )
            await fail(job, [JobState.SUBMITTING], reason)
            return None
        try:
            urls = [await ctx.inputs.fal_url_for(sha) for sha in job.input_hashes]
        except UserError as exc:
            await fail(job, SUBMIT_STATES, str(exc))
            return None
        except FalError as exc:
            self._count_fal_error(exc)
            await fail(job, SUBMIT_STATES, exc.user_message)
            return None
        if not await self._mark_submitting(job, resubmit):
            return None
        job = await self.job()  # with the seed it is sent with
        if resubmit:
            log.warning("job=%s resubmitting after a crash inside the submit window", job.id)
        try:
            request_id = await ctx.fal.submit(job.params.to_fal_input(urls))
        except FalError as exc:
            self._count_fal_error(exc)
            await fail(job, [JobState.SUBMITTING], exc.user_message)
            return None
        async with ctx.db.transaction() as tx:
            await jobs_repo.transition(
                tx, job.id, [JobState.SUBMITTING], JobState.RUNNING, fal_request_id=request_id
            )
        await ctx.on_change(None)
        log.info("job=%s running at fal request=%s", job.id, request_id)
        return await self.job()

    async def _mark_submitting(self, job: Job, resubmit: bool) -> bool:
        """Store ``submitting`` before the POST; False when the job must not be sent.

        The budget check and the transition share one transaction, so what was checked is what
        the job starts against.
        """
        ctx = self.ctx
        params = job.params
        if params.seed is None:
            # Flexbot picks the seed, stored before the POST: a rerun is exact, and the request
            # can be recognised in fal's request list if the submit's answer is lost.
            params = replace(params, seed=secrets.randbelow(SEED_RANGE))
        async with ctx.db.transaction() as tx:
            over = None if resubmit else await ctx.budget_at_dispatch(job, tx)
            if over is None:
                return await jobs_repo.transition(  # False: cancelled meanwhile
                    tx,
                    job.id,
                    [job.state],
                    JobState.SUBMITTING,
                    submit_attempts=job.submit_attempts + 1,
                    started_at=job.started_at or ctx.clock(),
                    params=params.to_json(),
                    seed=params.seed,
                )
        reason = (
            "Your budget ran out while this edit was waiting (earlier edits cost more than "
            f"estimated); nothing was charged. {over.message}"
        )
        await ctx.settlement.fail(job, [JobState.QUEUED], reason)
        return False

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

    async def poll(self, job: Job) -> Job | None:
        """Poll fal until the job is done, cancelled or too slow (with jittered backoff)."""
        ctx = self.ctx
        assert job.fal_request_id is not None
        rid = job.fal_request_id
        delay = ctx.settings.poll_interval_seconds
        started = job.started_at or ctx.clock()
        cancel_sent = False
        while True:
            if ctx.stopping.is_set():
                return None  # running with a stored request id: resumes after restart
            wants_cancel = job.id in ctx.cancel_requests or job.cancel_requested
            if wants_cancel and not cancel_sent:
                cancel_sent = True
                with contextlib.suppress(FalError):
                    await ctx.fal.cancel(rid)
            if ctx.clock() - started > ctx.settings.fal_job_timeout_seconds and not cancel_sent:
                cancel_sent = True
                with contextlib.suppress(FalError):
                    await ctx.fal.cancel(rid)
                reason = (
                    "fal took too long to make this edit; nothing was charged. Try again later."
                )
                await ctx.settlement.fail(job, [JobState.RUNNING], reason)
                return None
            try:
                status = await ctx.fal.status(rid)
            except FalError as exc:
                self._count_fal_error(exc)
                if not exc.retryable and exc.status is not None and exc.status < 500:
                    await ctx.settlement.fail(job, [JobState.RUNNING], exc.user_message)
                    return None
                log.warning("job=%s status poll failed (%s); will retry", job.id, exc)
                status = None
            if status is not None and status.done:
                return await self.fetch(job, cancelled=wants_cancel)
            if status is not None:
                await self.progress(job, status)
            with contextlib.suppress(TimeoutError):
                jitter = delay * random.uniform(0.8, 1.2)
                await asyncio.wait_for(ctx.stopping.wait(), timeout=jitter)
            delay = min(max(delay * 1.5, 0.05), ctx.settings.poll_max_interval_seconds)

    async def fetch(self, job: Job, *, cancelled: bool) -> Job | None:
        """Download the output, store it and charge its actual price."""
        ctx = self.ctx
        rid = job.fal_request_id
        assert rid is not None
        try:
            result: EditResult = await ctx.fal.result(rid)
            if not result.images:
                raise FalError("fal returned no image")
            data = await ctx.fal.download(result.images[0].url, ctx.settings.max_output_bytes)
            width, height = image_size(data)
        except FalError as exc:
            self._count_fal_error(exc)
            if cancelled:
                await self.cancelled(job)
            else:
                await ctx.settlement.fail(job, [JobState.RUNNING], exc.user_message)
            return None
        except (UserError, ValueError, OSError):
            reason = "fal returned an image Flexbot could not read; nothing was charged. Try again."
            await ctx.settlement.fail(job, [JobState.RUNNING], reason)
            return None
        inputs = await ctx.inputs.rows(job.input_hashes, job.id)
        cost = ctx.prices.quote([(i.width, i.height) for i in inputs], (width, height)).micros
        content_type = "image/png" if data[:4] == b"\x89PNG" else "image/jpeg"
        sha = await ctx.inputs.store(data, width, height, content_type)
        won = await ctx.settlement.fetched(
            job, output_hash=sha, size=(width, height), seed=result.seed, cost=cost
        )
        if not won:
            return None
        if job.started_at:
            took = ctx.clock() - job.started_at
            ctx.metrics.fal_job_seconds.observe(took)
            ctx.record_duration(took)
        log.info("job=%s fetched output=%s cost=%s seed=%s", job.id, sha[:12], cost, result.seed)
        return await self.job()

    async def cancelled(self, job: Job) -> None:
        """fal stopped the job at our request (or it never left): release the money."""
        await self.ctx.settlement.end_job(
            job,
            [JobState.RUNNING, JobState.SUBMITTING],
            JobState.CANCELLED,
            "cancelled",
            notice="Cancelled.",
        )

    async def deliver(self, job: Job) -> None:
        """Post the result, retrying transient errors; it stays fetched if all attempts fail."""
        ctx = self.ctx
        assert job.output_hash is not None
        image = ctx.blobs.get(job.output_hash)
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
            async with ctx.db.transaction() as tx:
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
