"""One job's way from its stored state to a final one (DESIGN §3); each step stored before the next.

    queued/submitting -> submit to fal -> running(request_id) -> poll -> fetch -> fetched -> deliver

A run gets everything it needs in a ``RunContext`` from the engine and reads no engine internals.
It returns, leaving the job in a stored state it resumes from, whenever the engine is stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Container
from dataclasses import dataclass, replace
from typing import Any

from bot.engine import lost_result
from bot.engine.delivery import Delivery, Undeliverable
from bot.engine.follow import FalTime, StatusFeed
from bot.engine.inputs import Inputs
from bot.engine.reconcile import Reconciler, Verdict
from bot.engine.settlement import OnChange, Settlement
from bot.errors import UserError
from bot.fal.client import EditResult, FalClient, OutputImage, QueueStatus
from bot.fal.errors import FalError, FalResultGoneError, FalSubmitAmbiguous
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
SUBMIT_STATES = (JobState.QUEUED, JobState.UNSURE, JobState.SUBMITTING)
#: Rounds of ``result`` calls (each with the client's own retries) before a result fal
#: completed is booked as lost.
RESULT_ATTEMPTS = 3
TIMEOUT_REASON = "fal took too long to make this edit; nothing was charged. Try again later."


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
    #: Looks up jobs that may be at fal (``unsure``) in fal's request list.
    reconciler: Reconciler


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
        while job is not None:
            if job.state == JobState.QUEUED:
                job = await self.submit(job)
            elif job.state == JobState.UNSURE:
                job = await self.reconcile(job)
            elif job.state == JobState.RUNNING:
                job = await self.follow(job)
            elif job.state == JobState.FETCHED:
                await self.deliver(job)
                return
            else:  # final, or ``submitting`` left by a crashed worker: the next start sees to it
                return

    def _count_fal_error(self, exc: FalError) -> None:
        self.ctx.metrics.fal_errors.labels(exc.error_type or type(exc).__name__).inc()

    # -- submit ------------------------------------------------------------------------------------

    async def submit(self, job: Job) -> Job | None:
        """Send a queued job to fal, or send again an ``unsure`` one fal surely never got.

        ``submitting`` and the exact arguments (with the seed Flexbot picked) are stored before
        the POST. A lost answer leaves the job ``unsure`` (fal may be running it), to be looked
        up in fal's request list; it is never failed or sent again on the spot."""
        ctx = self.ctx
        fail = ctx.settlement.fail
        try:
            urls = [await ctx.inputs.fal_url_for(sha) for sha in job.input_hashes]
        except UserError as exc:
            await fail(job, SUBMIT_STATES, str(exc))
            return None
        except FalError as exc:
            self._count_fal_error(exc)
            await fail(job, SUBMIT_STATES, exc.user_message)
            return None
        arguments = await self._mark_submitting(job, urls)
        if arguments is None:
            return None
        if job.state == JobState.UNSURE:
            log.warning("job=%s sending again: fal's request list does not show it", job.id)
        try:
            request_id = await ctx.fal.submit(arguments)
        except FalSubmitAmbiguous as exc:
            self._count_fal_error(exc)
            return await self._unsure(job, exc)
        except FalError as exc:  # fal refused it, or it never got there
            self._count_fal_error(exc)
            await fail(job, [JobState.SUBMITTING], exc.user_message)
            return None
        async with ctx.db.transaction() as tx:
            await jobs_repo.transition(
                tx,
                job.id,
                [JobState.SUBMITTING],
                JobState.RUNNING,
                fal_request_id=request_id,
                fal_seen_at=ctx.clock(),  # fal accepted it: queued at fal from now
            )
        await ctx.on_change(None)
        log.info("job=%s running at fal request=%s", job.id, request_id)
        return await self.job()

    async def _unsure(self, job: Job, exc: FalSubmitAmbiguous) -> Job | None:
        """The submit's answer was lost: fal may be running (and billing) the job."""
        ctx = self.ctx
        ctx.metrics.fal_submits_unsure.labels(exc.cause).inc()
        async with ctx.db.transaction() as tx:
            await jobs_repo.transition(
                tx,
                job.id,
                [JobState.SUBMITTING],
                JobState.UNSURE,
                submit_window_end=ctx.clock(),
                fal_request_hint=exc.request_id,
            )
        await ctx.on_change(None)
        log.warning(
            "job=%s submit answer lost (%s, request_id=%s); looking for it at fal",
            job.id,
            exc.cause,
            exc.request_id,
        )
        return await self.job()

    async def _mark_submitting(self, job: Job, urls: list[str]) -> dict[str, Any] | None:
        """Store ``submitting``, the seed and the exact arguments before the POST; returns the
        arguments, or None when the job must not be sent.

        The budget check and the transition share one transaction, so what was checked is what
        the job starts against (a job sent again was checked the first time).
        """
        ctx = self.ctx
        params = job.params
        if params.seed is None:
            # Flexbot picks the seed, stored before the POST: a rerun is exact, and the request
            # can be recognised in fal's request list if the submit's answer is lost.
            params = replace(params, seed=secrets.randbelow(SEED_RANGE))
        arguments = params.to_fal_input(urls)
        resend = job.state == JobState.UNSURE
        async with ctx.db.transaction() as tx:
            over = None if resend else await ctx.budget_at_dispatch(job, tx)
            if over is None:
                now = ctx.clock()
                won = await jobs_repo.transition(  # False: cancelled meanwhile
                    tx,
                    job.id,
                    [job.state],
                    JobState.SUBMITTING,
                    submit_attempts=job.submit_attempts + 1,
                    started_at=job.started_at or now,
                    params=params.to_json(),
                    seed=params.seed,
                    fal_input=json.dumps(arguments, sort_keys=True),
                    submit_window_start=now,
                    submit_window_end=None,
                    fal_request_hint=None,
                )
                return arguments if won else None
        reason = (
            "Your budget ran out while this edit was waiting (earlier edits cost more than "
            f"estimated); nothing was charged. {over.message}"
        )
        await ctx.settlement.fail(job, [JobState.QUEUED], reason)
        return None

    async def reconcile(self, job: Job) -> Job | None:
        """A job fal may have: adopt its request, send it again once, or end it."""
        ctx = self.ctx
        verdict = await ctx.reconciler.settle(job, ctx.cancel_requests)
        if verdict == Verdict.ADOPTED:
            await ctx.on_change(None)
            return await self.job()
        if verdict not in (Verdict.RESUBMIT, Verdict.GIVE_UP):
            return None  # stopping (looked up again after the restart), or moved meanwhile
        job = await self.job()
        if job.state != JobState.UNSURE:
            return job
        cancelled = job.cancel_requested or job.id in ctx.cancel_requests
        if verdict == Verdict.RESUBMIT and not cancelled:
            ctx.metrics.fal_unsure_resolved.labels("resubmitted").inc()
            return await self.submit(job)
        if cancelled:
            ctx.metrics.fal_unsure_resolved.labels("cancelled").inc()
            await self.cancelled(job)
            return None
        ctx.metrics.fal_unsure_resolved.labels("failed").inc()
        reason = (
            "Flexbot could not get this edit to fal after two tries (the answers were lost "
            "on the way); nothing was charged. Please try again."
        )
        await ctx.settlement.fail(job, [JobState.UNSURE], reason)
        return None

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
                    self._count_fal_error(exc)
                    if not exc.retryable and exc.status is not None and exc.status < 500:
                        await ctx.settlement.fail(job, [JobState.RUNNING], exc.user_message)
                        return None
                    log.warning("job=%s status poll failed (%s); will retry", job.id, exc)
                    continue
                if status is None:
                    continue
                if status.done:
                    await fal_time.save()
                    return await self.fetch(job, cancelled=wants_cancel, timed_out=timed_out)
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

    async def fetch(self, job: Job, *, cancelled: bool, timed_out: bool = False) -> Job | None:
        """Download the output, store it and charge its actual price.

        A result fal no longer has (``FalResultGoneError``), or an output that cannot be had
        after fal answered with it, was still billed by fal: ``lost`` books it."""
        ctx = self.ctx
        rid = job.fal_request_id
        assert rid is not None
        result: EditResult | None = None
        for attempt in range(1, RESULT_ATTEMPTS + 1):
            try:
                result = await ctx.fal.result(rid)
                break
            except FalResultGoneError as exc:
                self._count_fal_error(exc)
                await self.lost(job, None, cancelled=cancelled, timed_out=timed_out)
                return None
            except FalError as exc:
                self._count_fal_error(exc)
                if exc.retryable and attempt < RESULT_ATTEMPTS and not ctx.stopping.is_set():
                    # The result is kept at fal for a while: try again rather than lose it.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            ctx.stopping.wait(), ctx.settings.poll_max_interval_seconds
                        )
                    continue
                if ctx.stopping.is_set() and exc.retryable:
                    return None  # still running: fetched after the restart
                await self._ended_without_result(job, exc.user_message, cancelled, timed_out)
                return None
        assert result is not None
        output = result.images[0] if result.images else None
        try:
            if output is None:
                raise FalError("fal returned no image")
            data = await ctx.fal.download(output.url, ctx.settings.max_output_bytes)
            width, height = image_size(data)
        except (FalError, UserError, ValueError, OSError) as exc:
            if isinstance(exc, FalError):
                self._count_fal_error(exc)
            log.warning("job=%s output could not be had: %s", job.id, exc)
            await self.lost(job, output, cancelled=cancelled, timed_out=timed_out)
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

    async def _ended_without_result(
        self, job: Job, message: str, cancelled: bool, timed_out: bool
    ) -> None:
        if cancelled and not timed_out:
            await self.cancelled(job)
        else:
            await self.ctx.settlement.fail(
                job, [JobState.RUNNING], TIMEOUT_REASON if timed_out else message
            )

    async def lost(
        self, job: Job, output: OutputImage | None, *, cancelled: bool, timed_out: bool
    ) -> None:
        """fal finished the job but its result cannot be had: book what fal billed."""
        ctx = self.ctx
        assert job.fal_request_id is not None
        record = await lost_result.fal_record(ctx.fal, job.fal_request_id)
        if record is not None and record.outcome not in (None, "success"):
            # fal's list says the request did not succeed (cancelled, refused): not billed.
            await self._ended_without_result(
                job, "fal could not make this edit; nothing was charged.", cancelled, timed_out
            )
            return
        inputs = await ctx.inputs.rows(job.input_hashes, job.id)
        sizes = [(i.width, i.height) for i in inputs]
        size = lost_result.output_size(record, output, job.params, sizes, ctx.prices)
        cost = ctx.prices.quote(sizes, size).micros
        ctx.metrics.fal_results_lost.inc()
        won = await ctx.settlement.lost(job, cost, lost_result.LOST_NOTICE)
        if won:
            log.warning(
                "job=%s result lost at fal request=%s: charged %s (what fal billed)",
                job.id,
                job.fal_request_id,
                cost,
            )

    async def cancelled(self, job: Job) -> None:
        """fal stopped the job at our request (or it never left): release the money."""
        await self.ctx.settlement.end_job(
            job,
            [JobState.RUNNING, JobState.UNSURE, JobState.SUBMITTING],
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
