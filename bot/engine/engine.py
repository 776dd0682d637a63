"""The job engine: submit with budgets, fair dispatch, fal jobs that survive crashes, settlement.

Life of a job (DESIGN §3), every step a compare-and-set on the stored state:

    queued -> submitting -> running(request_id) -> fetched(stored, charged) -> delivered
                                                                            \\-> undeliverable
       \\-> cancelled       \\-> failed(reason)      (reservation released, ledger row written)

Money: submit reserves the estimate (``reserve``); fetching the output releases it and charges the
actual price, in one transaction; a failure or cancel releases it. After a crash, ``running`` jobs
resume polling their stored request id (never a second submit), ``fetched`` ones are delivered, and
``submitting`` ones (crash between the POST and storing the id) are resubmitted once and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from bot.engine import quota
from bot.engine.delivery import Delivery, Undeliverable
from bot.engine.quota import Refusal
from bot.engine.scheduler import FairScheduler
from bot.errors import UserError
from bot.fal.client import EditResult, FalClient, QueueStatus
from bot.fal.errors import FalError
from bot.images import image_size
from bot.logs import bind
from bot.metrics import Metrics
from bot.model import (
    CancelOutcome,
    CancelResult,
    EditParams,
    EditRequest,
    InputImage,
    Job,
    JobState,
    JobTicket,
    LedgerKind,
    Origin,
    Progress,
    Requester,
)
from bot.pricing import PriceList
from bot.settings import Settings
from bot.store import blob_rows
from bot.store import jobs as jobs_repo
from bot.store import limits as limits_repo
from bot.store.blobs import BlobStore
from bot.store.db import Database

log = logging.getLogger(__name__)

ACTIVE_FAL = (JobState.SUBMITTING, JobState.RUNNING)
DELIVERY_ATTEMPTS = 5
FAL_URL_TTL = 6 * 3600.0  # reuse a fal storage URL for reruns within this window


class Engine:
    """The persistent fair queue. One per process; start() before use, stop() at shutdown."""

    def __init__(
        self,
        *,
        db: Database,
        blobs: BlobStore,
        fal: FalClient,
        delivery: Delivery,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.fal = fal
        self.delivery = delivery
        self.settings = settings
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.prices = PriceList.from_settings(settings)
        self.scheduler = FairScheduler()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._dispatcher: asyncio.Task[None] | None = None
        self._janitor: asyncio.Task[None] | None = None
        self._cancel_requests: set[int] = set()
        self._job_user: dict[int, int] = {}
        self._durations: list[float] = []
        self._changed = asyncio.Condition()

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover stored jobs (DESIGN §3) and start dispatching."""
        self._durations = await jobs_repo.recent_durations(self.db.conn)
        for job in await jobs_repo.jobs_in_states(self.db.conn, [JobState.QUEUED]):
            if job.id not in self.scheduler:  # submitted before start()
                await self._enqueue(job)
        resumed = await jobs_repo.jobs_in_states(
            self.db.conn, [JobState.SUBMITTING, JobState.RUNNING, JobState.FETCHED]
        )
        for job in resumed:
            log.info("job=%s resuming in state %s", job.id, job.state)
            self.scheduler.running[job.user_id] = self.scheduler.running.get(job.user_id, 0) + 1
            self._spawn(job.id, job.user_id)
        self._dispatcher = asyncio.create_task(self._dispatch(), name="engine-dispatch")
        self._janitor = asyncio.create_task(self._purge_loop(), name="engine-purge")

    @property
    def running(self) -> bool:
        """True while the dispatcher is alive and the engine takes jobs."""
        return (
            self._dispatcher is not None
            and not self._dispatcher.done()
            and not self._stopping.is_set()
        )

    async def stop(self, timeout: float | None = None) -> None:
        """Stop taking jobs; let in-flight work reach a stored state; close within ``timeout``."""
        timeout = self.settings.shutdown_timeout_seconds if timeout is None else timeout
        self._stopping.set()
        self._wake.set()
        for task in (self._dispatcher, self._janitor):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        workers = list(self._workers.values())
        if workers:
            # Workers check _stopping between steps and return at the next stored state.
            _, pending = await asyncio.wait(workers, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
                log.warning("shutdown: %d job(s) interrupted mid-step", len(pending))

    # -- submit ----------------------------------------------------------------------------------

    async def estimate(self, params: EditParams, inputs: Sequence[InputImage]) -> int:
        return self.prices.estimate(params, [(i.width, i.height) for i in inputs]).micros

    async def limits_for(self, requester: Requester) -> quota.Limits:
        overrides = await limits_repo.limit_overrides(
            self.db.conn, requester.guild_id, requester.user_id, requester.role_ids
        )
        return quota.resolve_limits(quota.default_limits(self.settings), overrides)

    async def usage_for(self, requester: Requester, now: float) -> quota.Usage:
        conn = self.db.conn
        day = quota.day_start(now).timestamp()
        month = quota.month_start(now).timestamp()
        return quota.Usage(
            user_day=await jobs_repo.spend(conn, day, user_id=requester.user_id),
            user_month=await jobs_repo.spend(conn, month, user_id=requester.user_id),
            guild_month=(
                await jobs_repo.spend(conn, month, guild_id=requester.guild_id)
                if requester.guild_id
                else 0
            ),
            global_month=await jobs_repo.spend(conn, month),
            user_credit=await limits_repo.credits_since(
                conn, requester.guild_id, requester.user_id, month
            ),
        )

    async def budget_at_dispatch(self, job: Job) -> Refusal | None:
        """Does a queued job still fit its budgets now that jobs before it were charged?

        Submit checked the estimate, but a job charged more than its estimate (the actual output
        was larger) spends money the jobs queued after it were admitted against. Re-checking the
        caps before a job starts keeps any cap from being overrun by more than the estimate error
        of the jobs running at once, instead of by the sum over a member's whole queue.
        """
        limits = await self.limits_for(job.requester)
        if all(limits[name] is None for name in quota.MONEY_LIMITS):
            return None
        now = self.clock()
        usage = await self.usage_for(job.requester, now)
        # The job's own reservation is in the usage; check it the way submit did, as new.
        held = job.held_micros
        in_day = job.created_at >= quota.day_start(now).timestamp()
        in_month = job.created_at >= quota.month_start(now).timestamp()
        usage = replace(
            usage,
            user_day=usage.user_day - (held if in_day else 0),
            user_month=usage.user_month - (held if in_month else 0),
            guild_month=usage.guild_month - (held if in_month and job.guild_id else 0),
            global_month=usage.global_month - (held if in_month else 0),
        )
        return quota.check_budget(job.estimate_micros, limits, usage, now)

    async def check_access(self, requester: Requester) -> Refusal | None:
        """Blocked members and paused servers, before any work is done."""
        conn = self.db.conn
        if await limits_repo.is_blocked(conn, requester.guild_id, requester.user_id):
            return Refusal("blocked", "You are not allowed to use Flexbot here.")
        paused = await limits_repo.paused_scopes(conn, requester.guild_id)
        if paused:
            where = "everywhere" if limits_repo.GLOBAL in paused else "on this server"
            return Refusal("paused", f"Flexbot is paused {where} by an admin; try again later.")
        return None

    async def submit(self, request: EditRequest) -> JobTicket | Refusal:
        """Check every limit and queue the job with its reservation, in one transaction."""
        if self._stopping.is_set():
            return Refusal("shutdown", "Flexbot is restarting; try again in a minute.")
        if not 1 <= len(request.inputs) <= 8:
            return Refusal("images", "An edit takes 1 to 8 images.")
        estimate = await self.estimate(request.params, request.inputs)
        who = request.requester
        now = self.clock()
        async with self.db.transaction() as conn:
            refusal = await self.check_access(who)
            if refusal is None:
                limits = await self.limits_for(who)
                queued, _running = await jobs_repo.count_active(conn, who.user_id)
                last = await jobs_repo.last_submission(conn, who.user_id)
                refusal = quota.check_counts(limits, queued, _running, last, now)
            if refusal is None:
                usage = await self.usage_for(who, now)
                refusal = quota.check_budget(estimate, limits, usage, now)
            if refusal is not None:
                log.info("user=%s guild=%s refused: %s", who.user_id, who.guild_id, refusal.limit)
                return refusal
            job_id = await jobs_repo.insert_job(
                conn,
                jobs_repo.NewJob(
                    user_id=who.user_id,
                    guild_id=who.guild_id,
                    channel_id=who.channel_id,
                    role_ids=who.role_ids,
                    origin=request.origin,
                    parent_job_id=request.parent_job_id,
                    endpoint=self.settings.fal_app_id,
                    params=request.params,
                    input_hashes=tuple(i.sha256 for i in request.inputs),
                    estimate_micros=estimate,
                    source_message_id=request.source_message_id,
                ),
                now,
            )
        self.scheduler.add(job_id, who.user_id, who.guild_id, limits["user_max_running"])
        self._job_user[job_id] = who.user_id
        log.info(
            "job=%s user=%s guild=%s queued estimate=%s",
            job_id,
            who.user_id,
            who.guild_id,
            estimate,
        )
        self._wake.set()
        position = self.scheduler.position(job_id) or 0
        return JobTicket(job_id, position, self.eta(position), estimate)

    async def _enqueue(self, job: Job) -> None:
        limits = await self.limits_for(job.requester)
        self.scheduler.add(job.id, job.user_id, job.guild_id, limits["user_max_running"])
        self._job_user[job.id] = job.user_id

    # -- queue info --------------------------------------------------------------------------------

    def typical_duration(self) -> float:
        recent = self._durations[:20]
        return statistics.median(recent) if recent else 20.0

    def eta(self, position: int) -> float:
        """Seconds until a job at this queue position starts, from recent fal durations."""
        slots = self.settings.fal_concurrency
        busy = len(self._workers)
        if position == 0 and busy < slots:
            return 0.0
        return (position // slots + 1) * self.typical_duration()

    def position(self, job_id: int) -> tuple[int, float] | None:
        pos = self.scheduler.position(job_id)
        return None if pos is None else (pos, self.eta(pos))

    # -- cancel ------------------------------------------------------------------------------------

    async def cancel(self, job_id: int, caller_id: int, *, moderator: bool = False) -> CancelResult:
        """Cancel a job: at once when queued, at fal when running; finished work is kept."""
        job = await jobs_repo.get_job(self.db.conn, job_id)
        if job is None:
            return CancelResult(job_id, CancelOutcome.NOT_FOUND, f"There is no job #{job_id}.")
        if job.user_id != caller_id and not moderator:
            return CancelResult(
                job_id,
                CancelOutcome.NOT_ALLOWED,
                "Only the member who asked for it or a moderator can cancel this job.",
            )
        if job.state == JobState.QUEUED:
            async with self.db.transaction() as conn:
                won = await jobs_repo.transition(
                    conn,
                    job_id,
                    [JobState.QUEUED],
                    JobState.CANCELLED,
                    failure_reason="cancelled",
                    finished_at=self.clock(),
                )
                if won:
                    await self._release(conn, job)
            if won:
                self.scheduler.remove(job_id)
                await self.notify_changed(JobState.CANCELLED)
                log.info("job=%s cancelled while queued by %s", job_id, caller_id)
                return CancelResult(
                    job_id,
                    CancelOutcome.CANCELLED,
                    f"Job #{job_id} cancelled; nothing was charged.",
                )
            job = await jobs_repo.get_job(self.db.conn, job_id) or job
        if job.state in ACTIVE_FAL:
            async with self.db.transaction() as conn:
                await jobs_repo.update_job(conn, job_id, cancel_requested=1)
            self._cancel_requests.add(job_id)
            log.info("job=%s cancel requested by %s", job_id, caller_id)
            return CancelResult(
                job_id,
                CancelOutcome.CANCELLING,
                f"Cancelling job #{job_id} at fal. If it "
                "had already finished, you will still get (and pay for) it.",
            )
        return CancelResult(
            job_id, CancelOutcome.FINISHED, f"Job #{job_id} has already ended ({job.state})."
        )

    # -- rerun / remix -------------------------------------------------------------------------

    async def _blob_rows(self, hashes: Sequence[str], job_id: int) -> list[blob_rows.BlobRow]:
        """What the blobs table knows of these images (sizes stay after the files are purged)."""
        rows = []
        for sha in hashes:
            row = await blob_rows.get_blob(self.db.conn, sha)
            if row is None:
                raise UserError(f"Job #{job_id} refers to an unknown image.")
            rows.append(row)
        return rows

    async def _inputs_of(self, hashes: Sequence[str], job_id: int) -> tuple[InputImage, ...]:
        """The images as inputs for a new job; refused when any of them was purged."""
        rows = await self._blob_rows(hashes, job_id)
        if any(r.deleted or not self.blobs.exists(r.sha256) for r in rows):
            raise UserError(
                f"The images of job #{job_id} have been deleted (images are kept "
                f"{self.settings.blob_retention_days:g} days); start a new /edit instead."
            )
        return tuple(InputImage(r.sha256, r.width, r.height) for r in rows)

    async def _source(self, job_id: int, requester: Requester) -> Job:
        job = await jobs_repo.get_job(self.db.conn, job_id)
        if job is None:
            raise UserError(f"There is no job #{job_id}.")
        if job.user_id != requester.user_id and await limits_repo.remix_opted_out(
            self.db.conn, job.user_id
        ):
            raise UserError(
                f"The author of job #{job_id} has opted out of others reusing their images."
            )
        return job

    async def rerun(
        self,
        job_id: int,
        requester: Requester,
        overrides: dict[str, Any] | None = None,
        *,
        origin: Origin = Origin.RERUN,
    ) -> JobTicket | Refusal:
        """Run a job again with its stored parameters and inputs (same seed unless overridden)."""
        job = await self._source(job_id, requester)
        params = replace(job.params, seed=job.seed if job.seed is not None else job.params.seed)
        if overrides:
            params = replace(params, **overrides)
        inputs = await self._inputs_of(job.input_hashes, job_id)
        return await self.submit(
            EditRequest(params, inputs, requester, origin=origin, parent_job_id=job_id)
        )

    async def remix(
        self, job_id: int, requester: Requester, prompt: str, **overrides: Any
    ) -> JobTicket | Refusal:
        """A new edit that uses this job's output as its reference image."""
        job = await self._source(job_id, requester)
        if job.output_hash is None:
            raise UserError(f"Job #{job_id} has no result to remix yet.")
        inputs = await self._inputs_of([job.output_hash], job_id)
        params = replace(job.params, prompt=prompt, seed=None, **overrides)
        return await self.submit(
            EditRequest(params, inputs, requester, origin=Origin.REMIX, parent_job_id=job_id)
        )

    async def notify_changed(self, final_state: str | None = None) -> None:
        """Wake everyone waiting in wait_for_state (called after each stored transition)."""
        if final_state is not None:
            self.metrics.jobs_finished.labels(final_state).inc()
        async with self._changed:
            self._changed.notify_all()

    async def wait_for_state(
        self, job_id: int, states: Sequence[str] = tuple(JobState.FINAL), timeout: float = 60.0
    ) -> Job:
        """Wait until the job is in one of ``states``; raises TimeoutError."""

        async def reached() -> Job:
            async with self._changed:
                while True:
                    job = await jobs_repo.get_job(self.db.conn, job_id)
                    if job is None:
                        raise UserError(f"There is no job #{job_id}.")
                    if job.state in states:
                        return job
                    await self._changed.wait()

        return await asyncio.wait_for(reached(), timeout)

    async def get_job(self, job_id: int) -> Job | None:
        return await jobs_repo.get_job(self.db.conn, job_id)

    async def set_status_message(self, job_id: int, message_id: int) -> None:
        async with self.db.transaction() as conn:
            await jobs_repo.update_job(conn, job_id, status_message_id=message_id)

    # -- dispatch ----------------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            while len(self._workers) < self.settings.fal_concurrency:
                job_id = self.scheduler.pick()
                if job_id is None:
                    break
                self._spawn(job_id, self._job_user[job_id])
            await self._wake.wait()

    def _spawn(self, job_id: int, user_id: int) -> None:
        task = asyncio.create_task(self._run(job_id, user_id), name=f"job-{job_id}")
        self._workers[job_id] = task

        def done(_: asyncio.Task[None]) -> None:
            self._workers.pop(job_id, None)
            self._job_user.pop(job_id, None)
            self.scheduler.finished(user_id)
            self._wake.set()

        task.add_done_callback(done)

    async def _run(self, job_id: int, user_id: int) -> None:
        try:
            with bind(job_id=job_id, user_id=user_id):
                await _JobRun(self, job_id).run()
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug, not a fal or Discord failure: keep the job where it is (it resumes on the
            # next start) rather than lose it, and say so loudly.
            log.exception("job=%s worker crashed; it will resume after a restart", job_id)

    # -- money -------------------------------------------------------------------------------------

    async def _release(self, conn: Any, job: Job) -> None:
        current = await jobs_repo.get_job(conn, job.id)
        held = current.held_micros if current else 0
        if held:
            await jobs_repo.add_ledger(
                conn, job.id, LedgerKind.RELEASE, held, job.user_id, job.guild_id, self.clock()
            )

    async def fail(self, job: Job, from_states: Sequence[str], reason: str) -> bool:
        """End a job without a result: release its money and tell the requester."""
        async with self.db.transaction() as conn:
            won = await jobs_repo.transition(
                conn,
                job.id,
                from_states,
                JobState.FAILED,
                failure_reason=reason,
                finished_at=self.clock(),
            )
            if won:
                await self._release(conn, job)
        if won:
            await self.notify_changed(JobState.FAILED)
            log.info("job=%s failed: %s", job.id, reason)
            with contextlib.suppress(Exception):
                await self.delivery.failed(replace(job, state=JobState.FAILED), reason)
        return won

    # -- retention -------------------------------------------------------------------------------

    async def purge_blobs(self, now: float | None = None) -> int:
        """Delete image files older than the retention period, unless an active job needs them."""
        now = self.clock() if now is None else now
        cutoff = now - self.settings.blob_retention_days * 86400
        conn = self.db.conn
        active: set[str] = set()
        for job in await jobs_repo.jobs_in_states(conn, [*JobState.ACTIVE, JobState.FETCHED]):
            active.update(job.input_hashes)
            if job.output_hash:
                active.add(job.output_hash)
        old = [sha for sha in await blob_rows.blobs_older_than(conn, cutoff) if sha not in active]
        for sha in old:
            self.blobs.delete(sha)
            async with self.db.transaction() as tx:
                await blob_rows.mark_deleted(tx, sha, now)
        if old:
            log.info(
                "purged %d image(s) older than %g days", len(old), self.settings.blob_retention_days
            )
        return len(old)

    async def _purge_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.purge_blobs()
            except Exception:
                log.exception("blob purge failed; will retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=3600)

    async def store_blob(self, data: bytes, width: int, height: int, content_type: str) -> str:
        """Put bytes in the blob store and record them (a re-store refreshes retention)."""
        sha = await asyncio.to_thread(self.blobs.put, data)  # fsync stays off the event loop
        async with self.db.transaction() as conn:
            await blob_rows.record_blob(
                conn, sha, len(data), width, height, content_type, self.clock()
            )
        return sha

    async def fal_url_for(self, sha: str) -> str:
        """Upload an input to fal storage once and reuse the URL for a while."""
        row = await blob_rows.get_blob(self.db.conn, sha)
        now = self.clock()
        if row and row.fal_url and now - (row.fal_url_at or 0) < FAL_URL_TTL:
            return row.fal_url
        data = self.blobs.get(sha)
        if data is None:
            raise UserError("An input image of this job has been deleted.")
        content_type = row.content_type if row else "image/png"
        ext = "png" if content_type == "image/png" else "jpg"
        url = await self.fal.upload(data, content_type, f"{sha[:16]}.{ext}")
        async with self.db.transaction() as conn:
            await blob_rows.set_fal_url(conn, sha, url, now)
        return url


class _JobRun:
    """One job's way from its stored state to a final one; each step stored before the next."""

    def __init__(self, engine: Engine, job_id: int) -> None:
        self.e = engine
        self.job_id = job_id
        self._last_progress = 0.0

    async def job(self) -> Job:
        job = await jobs_repo.get_job(self.e.db.conn, self.job_id)
        assert job is not None
        return job

    async def run(self) -> None:
        job: Job | None = await self.job()
        if job is not None and job.state in (JobState.QUEUED, JobState.SUBMITTING):
            job = await self.submit(job)
        if job is not None and job.state == JobState.RUNNING:
            job = await self.poll(job)
        if job is not None and job.state == JobState.FETCHED:
            await self.deliver(job)

    async def submit(self, job: Job) -> Job | None:
        e = self.e
        resubmit = job.state == JobState.SUBMITTING
        if resubmit and job.cancel_requested:
            # Cancelled while its first submit was in flight: don't send it again.
            await self.cancelled(job)
            return None
        if resubmit and job.submit_attempts >= 2:
            await e.fail(
                job,
                [JobState.SUBMITTING],
                "Flexbot was interrupted twice while "
                "sending this edit to fal; nothing was charged. Please try again.",
            )
            return None
        try:
            urls = [await e.fal_url_for(sha) for sha in job.input_hashes]
        except UserError as exc:
            await e.fail(job, [JobState.QUEUED, JobState.SUBMITTING], str(exc))
            return None
        except FalError as exc:
            e.metrics.fal_errors.labels(exc.error_type or type(exc).__name__).inc()
            await e.fail(job, [JobState.QUEUED, JobState.SUBMITTING], exc.user_message)
            return None
        async with e.db.transaction() as conn:
            over = None if resubmit else await e.budget_at_dispatch(job)
            if over is not None:
                reason = (
                    "Your budget ran out while this edit was waiting (earlier edits cost more "
                    f"than estimated); nothing was charged. {over.message}"
                )
                won = await jobs_repo.transition(
                    conn,
                    job.id,
                    [JobState.QUEUED],
                    JobState.FAILED,
                    failure_reason=reason,
                    finished_at=e.clock(),
                )
                if won:
                    await e._release(conn, job)
            else:
                won = await jobs_repo.transition(
                    conn,
                    job.id,
                    [job.state],
                    JobState.SUBMITTING,
                    submit_attempts=job.submit_attempts + 1,
                    started_at=job.started_at or e.clock(),
                )
        if over is not None:
            if won:
                await e.notify_changed(JobState.FAILED)
                log.info("job=%s failed at dispatch: over budget (%s)", job.id, over.limit)
                with contextlib.suppress(Exception):
                    await e.delivery.failed(replace(job, state=JobState.FAILED), reason)
            return None
        if not won:
            return None  # cancelled meanwhile
        if resubmit:
            log.warning("job=%s resubmitting after a crash inside the submit window", job.id)
        try:
            request_id = await e.fal.submit(job.params.to_fal_input(urls))
        except FalError as exc:
            e.metrics.fal_errors.labels(exc.error_type or type(exc).__name__).inc()
            await e.fail(job, [JobState.SUBMITTING], exc.user_message)
            return None
        async with e.db.transaction() as conn:
            await jobs_repo.transition(
                conn, job.id, [JobState.SUBMITTING], JobState.RUNNING, fal_request_id=request_id
            )
        await e.notify_changed()
        log.info("job=%s running at fal request=%s", job.id, request_id)
        return await self.job()

    async def progress(self, job: Job, status: QueueStatus | None) -> None:
        now = time.monotonic()
        if now - self._last_progress < self.e.settings.progress_interval_seconds:
            return
        self._last_progress = now
        if status is None:
            progress = Progress(job.state)
        elif status.status == "IN_QUEUE":
            progress = Progress("fal_queue", queue_position=status.queue_position)
        else:
            progress = Progress("running", logs=tuple(line.message for line in status.logs[-3:]))
        try:
            await self.e.delivery.progress(job, progress)
        except Exception:
            log.warning("job=%s progress update failed", job.id, exc_info=True)

    async def poll(self, job: Job) -> Job | None:
        e = self.e
        assert job.fal_request_id is not None
        rid = job.fal_request_id
        delay = e.settings.poll_interval_seconds
        started = job.started_at or e.clock()
        cancel_sent = False
        while True:
            if e._stopping.is_set():
                return None  # running with a stored request id: resumes after restart
            wants_cancel = job.id in e._cancel_requests or job.cancel_requested
            if wants_cancel and not cancel_sent:
                cancel_sent = True
                with contextlib.suppress(FalError):
                    await e.fal.cancel(rid)
            if e.clock() - started > e.settings.fal_job_timeout_seconds and not cancel_sent:
                cancel_sent = True
                with contextlib.suppress(FalError):
                    await e.fal.cancel(rid)
                await e.fail(
                    job,
                    [JobState.RUNNING],
                    "fal took too long to make this edit; nothing was charged. Try again later.",
                )
                return None
            try:
                status = await e.fal.status(rid)
            except FalError as exc:
                e.metrics.fal_errors.labels(exc.error_type or type(exc).__name__).inc()
                if not exc.retryable and exc.status is not None and exc.status < 500:
                    await e.fail(job, [JobState.RUNNING], exc.user_message)
                    return None
                log.warning("job=%s status poll failed (%s); will retry", job.id, exc)
                status = None
            if status is not None and status.done:
                return await self.fetch(job, cancelled=wants_cancel)
            if status is not None:
                await self.progress(job, status)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(e._stopping.wait(), timeout=delay * random.uniform(0.8, 1.2))
            delay = min(max(delay * 1.5, 0.05), e.settings.poll_max_interval_seconds)

    async def fetch(self, job: Job, *, cancelled: bool) -> Job | None:
        e = self.e
        rid = job.fal_request_id
        assert rid is not None
        try:
            result: EditResult = await e.fal.result(rid)
            if not result.images:
                raise FalError("fal returned no image")
            data = await e.fal.download(result.images[0].url, e.settings.max_output_bytes)
            width, height = image_size(data)
        except FalError as exc:
            e.metrics.fal_errors.labels(exc.error_type or type(exc).__name__).inc()
            if cancelled:
                await self.cancelled(job)
                return None
            await e.fail(job, [JobState.RUNNING], exc.user_message)
            return None
        except (UserError, ValueError, OSError):
            await e.fail(
                job,
                [JobState.RUNNING],
                "fal returned an image Flexbot could not read; nothing was charged. Try again.",
            )
            return None
        inputs = await e._blob_rows(job.input_hashes, job.id)
        cost = e.prices.quote([(i.width, i.height) for i in inputs], (width, height)).micros
        content_type = "image/png" if data[:4] == b"\x89PNG" else "image/jpeg"
        sha = await e.store_blob(data, width, height, content_type)
        now = e.clock()
        async with e.db.transaction() as conn:
            won = await jobs_repo.transition(
                conn,
                job.id,
                [JobState.RUNNING],
                JobState.FETCHED,
                output_hash=sha,
                output_width=width,
                output_height=height,
                seed=result.seed,
                cost_micros=cost,
                finished_at=now,
            )
            if won:
                await e._release(conn, job)
                await jobs_repo.add_ledger(
                    conn, job.id, LedgerKind.CHARGE, cost, job.user_id, job.guild_id, now
                )
        if not won:
            return None
        await e.notify_changed()
        if job.started_at:
            e.metrics.fal_job_seconds.observe(now - job.started_at)
            e._durations.insert(0, now - job.started_at)
            del e._durations[50:]
        log.info("job=%s fetched output=%s cost=%s seed=%s", job.id, sha[:12], cost, result.seed)
        return await self.job()

    async def cancelled(self, job: Job) -> None:
        """fal stopped the job at our request: release the money."""
        e = self.e
        async with e.db.transaction() as conn:
            won = await jobs_repo.transition(
                conn,
                job.id,
                [JobState.RUNNING, JobState.SUBMITTING],
                JobState.CANCELLED,
                failure_reason="cancelled",
                finished_at=e.clock(),
            )
            if won:
                await e._release(conn, job)
        e._cancel_requests.discard(job.id)
        if won:
            await e.notify_changed(JobState.CANCELLED)
            log.info("job=%s cancelled at fal", job.id)
            with contextlib.suppress(Exception):
                await e.delivery.failed(replace(job, state=JobState.CANCELLED), "Cancelled.")
        return None

    async def deliver(self, job: Job) -> None:
        e = self.e
        assert job.output_hash is not None
        image = e.blobs.get(job.output_hash)
        if image is None:
            await self.undeliverable(job, "the result image is missing from storage")
            return
        delay = 1.0
        for attempt in range(1, DELIVERY_ATTEMPTS + 1):
            try:
                message_id = await e.delivery.deliver(job, image)
            except Undeliverable as exc:
                await self.undeliverable(job, exc.reason)
                return
            except Exception:
                log.warning("job=%s delivery attempt %d failed", job.id, attempt, exc_info=True)
                if attempt == DELIVERY_ATTEMPTS or e._stopping.is_set():
                    return  # stays fetched: delivered after the next start
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(e._stopping.wait(), timeout=delay)
                delay *= 2
                continue
            async with e.db.transaction() as conn:
                await jobs_repo.transition(
                    conn,
                    job.id,
                    [JobState.FETCHED],
                    JobState.DELIVERED,
                    result_message_id=message_id,
                )
            await e.notify_changed(JobState.DELIVERED)
            log.info("job=%s delivered message=%s", job.id, message_id)
            return

    async def undeliverable(self, job: Job, reason: str) -> None:
        async with self.e.db.transaction() as conn:
            await jobs_repo.transition(
                conn, job.id, [JobState.FETCHED], JobState.UNDELIVERABLE, failure_reason=reason
            )
        await self.e.notify_changed(JobState.UNDELIVERABLE)
        log.warning("job=%s undeliverable: %s (output kept, still charged)", job.id, reason)
