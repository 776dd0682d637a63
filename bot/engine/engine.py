"""The job engine: the facade over admission, the fair queue, job runs, settlement and images.

Life of a job (DESIGN §3), every step a compare-and-set on the stored state:

    queued -> submitting -> running(request_id) -> fetched(stored, charged) -> delivered
                  |            ^                                            \\-> undeliverable
                  v            | found in fal's request list
               unsure ---------+   (not found after a grace period: submitting again, once)
       \\-> cancelled       \\-> failed(reason)      (reservation released, ledger row written)

``unsure`` is "maybe at fal": the submit's answer was lost or a crash came inside the submit
window, so fal may be running and billing the job; ``reconcile`` looks it up before anything is
sent again, and it is never failed while fal may have it.

Money: submit reserves the estimate (``reserve``); fetching the output releases it and charges the
actual price, in one transaction; a failure or cancel releases it. A result fal made and billed
but Flexbot lost (expired at fal) is charged all the same, with the job failed and the member told
(``lost_result``). After a crash, ``running`` jobs ask fal's status first and resume following
their stored request id (never a second submit), ``fetched`` ones are delivered, and
``submitting`` ones become ``unsure``.

Who does what: ``admission`` (may this job be queued), ``dispatch`` (starting runs in the fair
queue's order), ``runner`` (one job's run), ``settlement`` (money moves, the one way a job ends),
``inputs`` (images, fal URLs, retention), ``recovery`` (stored jobs at start), ``cancel``,
``reuse`` (rerun/remix requests), ``queue_info`` (ETAs). The engine owns the lifecycle and
hands each of them what it needs.

Servers are kept apart (``bot.visibility``): ``job_for``, ``cancel``, ``rerun`` and ``remix`` see
only jobs visible from where the requester asks, and answer for any other job as for a missing one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from bot.engine import quota
from bot.engine.admission import Admission
from bot.engine.cancel import cancel_job
from bot.engine.delivery import Delivery
from bot.engine.dispatch import Dispatcher
from bot.engine.inputs import Inputs
from bot.engine.queue_info import QueueInfo
from bot.engine.reconcile import Reconciler
from bot.engine.recovery import recover
from bot.engine.reuse import Reuse
from bot.engine.runner import RunContext
from bot.engine.scheduler import FairScheduler
from bot.engine.settlement import Settlement
from bot.engine.shared_dispatch import SharedDispatcher
from bot.errors import NoSuchJob, UserError, Words
from bot.fal.client import FalClient
from bot.intake import DownloadBudget
from bot.metrics import Metrics
from bot.model import (
    CancelResult,
    EditParams,
    EditRequest,
    InputImage,
    Job,
    JobState,
    JobTicket,
    Origin,
    Requester,
)
from bot.pricing import PriceList
from bot.settings import Settings
from bot.store import jobs as jobs_repo
from bot.store.blobs import Blobs
from bot.store.db import Database, Tx
from bot.visibility import visible

log = logging.getLogger(__name__)

PURGE_INTERVAL = 3600.0
#: How often a waiter re-reads a job that another process may finish (no local notification).
SHARED_WAIT_POLL = 0.2


class Engine:
    """The persistent fair queue. One per process; start() before use, stop() at shutdown."""

    def __init__(
        self,
        *,
        db: Database,
        blobs: Blobs,
        fal: FalClient,
        settings: Settings,
        delivery: Delivery | None = None,
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
        self.admission = Admission(db, settings, self.prices, clock)
        self.inputs = Inputs(db, blobs, fal, settings, clock)
        self.settlement = Settlement(db, clock, self.notify_changed, self._tell)
        #: Bytes of attachments being downloaded, per member and in all (front ends acquire it).
        self.downloads = DownloadBudget.from_settings(settings)
        self.reuse = Reuse(db, self.inputs)
        self._stopping = asyncio.Event()
        # Several processes on one database claim from it; one process has its queue in memory.
        self.dispatcher: Dispatcher = (
            SharedDispatcher(db, settings, self._stopping, clock)
            if db.shared
            else Dispatcher(FairScheduler(), settings.fal_concurrency, self._stopping)
        )
        self.reconciler = Reconciler(db, fal, settings, self.metrics, clock, self._stopping)
        self.queue_info = QueueInfo(settings.fal_concurrency, lambda: len(self.dispatcher.workers))
        self._janitor: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()

    @property
    def scheduler(self) -> FairScheduler:
        """The fair queue of jobs waiting to run (bench swaps it before start)."""
        return self.dispatcher.scheduler

    @scheduler.setter
    def scheduler(self, scheduler: FairScheduler) -> None:
        self.dispatcher.scheduler = scheduler

    @property
    def _workers(self) -> dict[int, asyncio.Task[None]]:
        """Running workers by job id (the property tests check that none is left behind)."""
        return self.dispatcher.workers

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, delivery: Delivery | None = None) -> None:
        """Recover stored jobs (DESIGN §3) and start dispatching results to ``delivery``."""
        self.delivery = delivery or self.delivery
        if self.delivery is None:
            raise RuntimeError("Engine.start needs a Delivery")
        self.dispatcher.context = self._make_run_context(self.delivery)
        await self.queue_info.load(self.db)
        if isinstance(self.dispatcher, SharedDispatcher):
            await self.dispatcher.recover()
        else:
            await recover(self.db, self.dispatcher, self.limits_for, self.clock)
        self.dispatcher.start()
        self._janitor = asyncio.create_task(self._purge_loop(), name="engine-purge")

    def _make_run_context(self, delivery: Delivery) -> RunContext:
        return RunContext(
            db=self.db,
            fal=self.fal,
            blobs=self.blobs,
            delivery=delivery,
            settings=self.settings,
            prices=self.prices,
            metrics=self.metrics,
            clock=self.clock,
            inputs=self.inputs,
            settlement=self.settlement,
            on_change=self.notify_changed,
            budget_at_dispatch=self.admission.budget_at_dispatch,
            limits_for=self.admission.limits_for,
            stopping=self._stopping,
            cancel_requests=self.dispatcher.cancel_requests,
            record_duration=self.queue_info.record,
            reconciler=self.reconciler,
        )

    @property
    def running(self) -> bool:
        """True while the dispatcher is alive and the engine takes jobs."""
        return self.dispatcher.alive and not self._stopping.is_set()

    async def stop(self, timeout: float | None = None) -> None:
        """Stop taking jobs; let in-flight work reach a stored state; close within ``timeout``."""
        timeout = self.settings.shutdown_timeout_seconds if timeout is None else timeout
        self._stopping.set()
        await self.dispatcher.stop_loop()
        if self._janitor is not None:
            self._janitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._janitor
        await self.dispatcher.drain(timeout)

    # -- admission ---------------------------------------------------------------------------------

    async def estimate(self, params: EditParams, inputs: Sequence[InputImage]) -> int:
        return self.admission.estimate(params, inputs)

    async def limits_for(self, requester: Requester) -> quota.Limits:
        return await self.admission.limits_for(requester)

    async def usage_for(self, requester: Requester, now: float) -> quota.Usage:
        return await self.admission.usage_for(requester, now)

    async def check_access(self, requester: Requester) -> None:
        """Raise UserError for blocked members and paused servers."""
        await self.admission.check_access(requester)

    async def budget_at_dispatch(self, job: Job, tx: Tx | None = None) -> UserError | None:
        return await self.admission.budget_at_dispatch(job, tx)

    async def precheck(
        self,
        requester: Requester,
        params: EditParams,
        declared: Sequence[tuple[int, int] | None],
        declared_bytes: Sequence[int],
        *,
        source_author_id: int | None = None,
    ) -> int:
        """Raise the UserError submit would, judged from the uploads' declared sizes (None: not
        known) before anything is downloaded; writes nothing. Returns the upper-bound estimate."""
        self._check_running()
        return await self.admission.precheck(
            requester, params, declared, declared_bytes, source_author_id=source_author_id
        )

    async def submit(self, request: EditRequest) -> JobTicket:
        """Check every limit and queue the job with its reservation; raises UserError.

        New images (``InputImage.data`` set) are written to the blob store only once the job is
        admitted, and before it can be dispatched: a refused edit leaves nothing on disk. A crash
        in between leaves a queued job whose inputs are missing; its run fails it and releases
        its money, like any job whose images are gone.
        """
        self._check_running()
        admitted = await self.admission.admit(request, self.settings.fal_app_id)
        who = request.requester
        job_id = admitted.job_id
        try:
            await self._store_new_inputs(job_id, request.inputs)
        except OSError:
            log.exception("job=%s could not store its input images", job_id)
            reason = "Flexbot could not store your images; nothing was charged. Please try again."
            job = await jobs_repo.get_job(self.db, job_id)
            if job is not None:
                await self.settlement.end_job(job, [JobState.QUEUED], JobState.FAILED, reason)
            raise UserError(reason, limit="storage") from None
        except BaseException:
            # Cancelled mid-store: queue it anyway, so a missing input fails it and frees the money
            # now rather than after a restart.
            self.dispatcher.queue(job_id, who.user_id, who.guild_id, admitted.max_running)
            raise
        self.dispatcher.queue(job_id, who.user_id, who.guild_id, admitted.max_running)
        log.info(
            "job=%s user=%s guild=%s queued estimate=%s",
            job_id,
            who.user_id,
            who.guild_id,
            admitted.estimate_micros,
        )
        position = self.scheduler.position(job_id) or 0
        return JobTicket(job_id, position, self.eta(position), admitted.estimate_micros)

    def _check_running(self) -> None:
        if self._stopping.is_set():
            raise UserError("Flexbot is restarting; try again in a minute.", limit="shutdown")

    async def _store_new_inputs(self, job_id: int, inputs: Sequence[InputImage]) -> None:
        for image in inputs:
            if image.data is None:
                continue  # already stored (a rerun's or remix's images)
            sha = await self.inputs.store(image.data, image.width, image.height, image.content_type)
            if sha != image.sha256:  # the job names image.sha256: its run will find it missing
                log.error("job=%s input stored as %s, not %s", job_id, sha[:12], image.sha256[:12])

    # -- queue info --------------------------------------------------------------------------------

    def typical_duration(self) -> float:
        return self.queue_info.typical_duration()

    def eta(self, position: int) -> float:
        """Seconds until a job at this queue position starts, from recent fal durations."""
        return self.queue_info.eta(position)

    def position(self, job_id: int) -> tuple[int, float] | None:
        pos = self.scheduler.position(job_id)
        return None if pos is None else (pos, self.eta(pos))

    async def jobs_by_state(self) -> dict[str, int]:
        """How many stored jobs are in each state (for /healthz)."""
        return await jobs_repo.count_by_state(self.db)

    async def spend_by_guild(self, since: float) -> dict[int | None, int]:
        """Money held or charged per guild for jobs created since ``since`` (for /healthz)."""
        return await jobs_repo.spend_by_guild(self.db, since)

    # -- cancel ------------------------------------------------------------------------------------

    async def cancel(self, job_id: int, who: Requester) -> CancelResult:
        """Cancel a job: at once when queued, at fal when running; finished work is kept.

        Only its requester or a moderator of its server may, from where the job is visible
        (``bot.visibility``); a job not visible from here is ``not_found``, like a missing one.
        """
        return await cancel_job(
            job_id,
            who,
            db=self.db,
            settlement=self.settlement,
            scheduler=self.scheduler,
            cancel_requests=self.dispatcher.cancel_requests,
        )

    # -- rerun / remix -------------------------------------------------------------------------

    async def job_for(self, job_id: int, who: Requester) -> Job:
        """The job, if ``who`` may see it from where they are; else NoSuchJob, as if missing."""
        job = await jobs_repo.get_job(self.db, job_id)
        if job is None or not visible(job, who):
            raise NoSuchJob(job_id)
        return job

    async def rerun(
        self,
        job_id: int,
        requester: Requester,
        overrides: dict[str, Any] | None = None,
        *,
        origin: Origin = Origin.RERUN,
    ) -> JobTicket:
        """Run a job again with its stored parameters and inputs (same seed unless overridden)."""
        job = await self.job_for(job_id, requester)
        return await self.submit(await self.reuse.rerun_request(job, requester, overrides, origin))

    async def remix(
        self, job_id: int, requester: Requester, prompt: str, **overrides: Any
    ) -> JobTicket:
        """A new edit that uses this job's output as its reference image."""
        job = await self.job_for(job_id, requester)
        return await self.submit(await self.reuse.remix_request(job, requester, prompt, overrides))

    # -- jobs ----------------------------------------------------------------------------------

    async def notify_changed(self, final_state: JobState | None = None) -> None:
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
                    job = await jobs_repo.get_job(self.db, job_id)
                    if job is None:
                        raise NoSuchJob(job_id)
                    if job.state in states:
                        return job
                    if self.db.shared:  # another process may be the one to change it
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._changed.wait(), SHARED_WAIT_POLL)
                    else:
                        await self._changed.wait()

        return await asyncio.wait_for(reached(), timeout)

    async def get_job(self, job_id: int) -> Job | None:
        return await jobs_repo.get_job(self.db, job_id)

    async def owner_of_message(self, message_id: int, author_id: int, bot_id: int | None) -> int:
        """Whose images a message holds: its author, or for a result the bot posted, the member
        who asked for it (so the context menu honours that member's remix opt-out)."""
        if author_id != bot_id:
            return author_id
        job = await jobs_repo.job_by_result_message(self.db, message_id)
        return job.user_id if job is not None else author_id

    async def output_image(self, job: Job) -> bytes | None:
        """The job's result image, or None when it has none or retention purged it."""
        if job.output_hash is None:
            return None
        return await self.blobs.get(job.output_hash)

    async def set_status_message(self, job_id: int, message_id: int) -> None:
        async with self.db.transaction(serial=False) as tx:
            await jobs_repo.update_job(tx, job_id, status_message_id=message_id)

    async def _tell(self, job: Job, notice: Words) -> None:
        if self.delivery is not None:
            await self.delivery.failed(job, notice)

    # -- images --------------------------------------------------------------------------------

    async def store_blob(self, data: bytes, width: int, height: int, content_type: str) -> str:
        """Put bytes in the blob store and record them (a re-store refreshes retention).

        Not for members' uploads: pass those to ``submit`` (``bot.intake.new_input``), which
        stores them only once their job is admitted."""
        return await self.inputs.store(data, width, height, content_type)

    async def fal_url_for(self, sha: str) -> str:
        return await self.inputs.fal_url_for(sha)

    async def purge_blobs(self, now: float | None = None) -> int:
        """Delete image files older than the retention period, unless an active job needs them."""
        return await self.inputs.purge(now)

    async def _purge_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                async with self.db.exclusive("retention") as mine:
                    if mine:  # one process at a time purges for the whole bot
                        await self.inputs.purge()
            except Exception:  # retention is housekeeping: log it, retry next round
                log.exception("blob purge failed; will retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=PURGE_INTERVAL)
