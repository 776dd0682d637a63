"""What a job's run may use (``RunContext``), handed over by the engine once at start.

The steps of a run (``submit``, ``fetch``, the rest in ``runner``) get this and nothing else of
the engine."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Container
from dataclasses import dataclass

from bot.engine.delivery import Delivery
from bot.engine.inputs import Inputs
from bot.engine.quota import Limits
from bot.engine.reconcile import Reconciler
from bot.engine.settlement import OnChange, Settlement
from bot.errors import UserError
from bot.fal.client import FalClient
from bot.fal.errors import FalError
from bot.metrics import Metrics
from bot.model import Job, JobState, Requester
from bot.pricing import PriceList
from bot.settings import Settings
from bot.store import jobs as jobs_repo
from bot.store.blobs import Blobs
from bot.store.db import Database, Tx

TIMEOUT_REASON = "fal took too long to make this edit; nothing was charged. Try again later."


@dataclass(frozen=True, slots=True)
class RunContext:
    """What a job's run may use, handed over by the engine once at start."""

    db: Database
    fal: FalClient
    blobs: Blobs
    delivery: Delivery
    settings: Settings
    prices: PriceList
    metrics: Metrics
    clock: Callable[[], float]
    inputs: Inputs
    settlement: Settlement
    on_change: OnChange
    #: The money check just before a queued job starts (``Admission.budget_at_dispatch``),
    #: given the member's limits read before the write lock (``Admission.limits_for``).
    budget_at_dispatch: Callable[[Job, Tx, Limits], Awaitable[UserError | None]]
    limits_for: Callable[[Requester], Awaitable[Limits]]
    #: Set when the engine stops: runs return at their next stored state.
    stopping: asyncio.Event
    #: Ids of jobs whose cancel was asked in this process (the stored flag covers restarts).
    cancel_requests: Container[int]
    #: Records how long a fal run took (for queue ETAs).
    record_duration: Callable[[float], None]
    #: Looks up jobs that may be at fal (``unsure``) in fal's request list.
    reconciler: Reconciler

    async def job(self, job_id: int) -> Job:
        """The job as stored now."""
        job = await jobs_repo.get_job(self.db, job_id)
        assert job is not None
        return job

    def count_fal_error(self, exc: FalError) -> None:
        self.metrics.fal_errors.labels(exc.error_type or type(exc).__name__).inc()

    async def cancelled(self, job: Job) -> None:
        """fal stopped the job at our request (or it never left): release the money."""
        await self.settlement.end_job(
            job,
            [JobState.RUNNING, JobState.UNSURE, JobState.SUBMITTING],
            JobState.CANCELLED,
            "cancelled",
            notice="Cancelled.",
        )

    async def ended_without_result(
        self, job: Job, message: str, cancelled: bool, timed_out: bool
    ) -> None:
        """fal ended a running job with nothing to fetch: cancelled, timed out or failed."""
        if cancelled and not timed_out:
            await self.cancelled(job)
        else:
            await self.settlement.fail(
                job, [JobState.RUNNING], TIMEOUT_REASON if timed_out else message
            )
